"""The mouth's shape: where the generated crop puts the lips and jaw, and the target shape of the
frame's own face that follows it.

The generator decides the mouth's shape; this module reads that shape back from the generated
crop with the face landmark model (`stablesync.face.crop_landmarks`), smooths it over time, and
turns it into target positions of the frame's own landmarks: points below the nostrils move
toward the generated ones, points at or above the nostrils stay exactly where they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stablesync.face import CropAlignment
from stablesync.face.align import TEMPLATE, anchor_points, similarity
from stablesync.face.crop_landmarks import CropLandmarks
from stablesync.face.landmarks import (
    LOWER_LIP_INNER,
    MOUTH_CORNER_LEFT,
    MOUTH_CORNER_RIGHT,
    MOUTH_INNER,
    MOUTH_OUTER,
    UPPER_LIP_INNER,
)
from stablesync.realtime.pipeline.smoothing import OneEuroConfig, OneEuroFilter

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

# The nostrils' base: the point under the nose between the nostrils and the alar bases. Nothing
# at or above the lowest of them moves.
NOSTRILS = (2, 98, 327)
NOSE_MARGIN = 0.3  # share of the nostrils-to-lip distance below the nostrils that does not move
UPPER_LIP_TOP = 0  # the outer upper lip at the middle
# Points around the nose and eyes that the generator does not change: the generated landmarks
# are registered to the frame's on these.
# The outer-lip ring's upper and lower halves, without the corners.
UPPER_OUTER = MOUTH_OUTER[1:10]
LOWER_OUTER = MOUTH_OUTER[11:]
# The inner-lip ring as two facing rows, from the subject's right corner (78) to the left (308).
INNER_UPPER = MOUTH_INNER[: MOUTH_INNER.index(308) + 1]
INNER_LOWER = (MOUTH_INNER[0], *reversed(MOUTH_INNER[MOUTH_INNER.index(308) :]))
# How far the lower lip is pushed down, in crop sizes, to triangulate a mouth that is open.
MIN_LIP_SPAN = 0.03
STABLE = (1, 2, 4, 5, 195, 98, 327, 64, 294, 33, 133, 263, 362, 168, 6)


@dataclass(frozen=True)
class ShapeConfig:
    max_eye_error: float = (
        0.08  # eyes found further than this (crop sizes) from where the crop puts them: wrong face
    )
    smoothing: OneEuroConfig = field(default_factory=lambda: OneEuroConfig(min_cutoff_hz=4.0, beta=1.0))


class GeneratedShape:
    """Reads the face mesh off generated crops, one stream at a time (call from one thread)."""

    def __init__(self, crop_size: int, cfg: ShapeConfig = ShapeConfig()) -> None:
        self.crop_size = crop_size
        self.cfg = cfg
        self._reader: CropLandmarks | None = None
        self._filter = OneEuroFilter(cfg.smoothing)

    def close(self) -> None:
        self._reader = None

    def reset(self) -> None:
        self._filter.reset()
        if self._reader is not None:
            self._reader.reset()

    def measure(self, generated: NDArray[np.uint8], t_ns: int) -> F32 | None:
        """(468, 2) landmarks of the generated (S, S, 3) crop in crop pixels, smoothed over time;
        None when no face is found there or it is not where the crop put the face."""
        if self._reader is None:
            self._reader = CropLandmarks(self.crop_size)
        points = self._reader.read(generated)
        if points is None:
            return None
        eyes = anchor_points(points)[:2] / self.crop_size
        if float(np.abs(eyes - TEMPLATE[:2]).max()) > self.cfg.max_eye_error:
            self._reader.reset()
            return None
        return self._filter(points, t_ns).astype(np.float32)


def _smoothstep(x: F64) -> F64:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass(frozen=True)
class FaceFrame:
    """The frame's face in upright crop units: where each landmark sits relative to the
    nostrils and the lips, which says how much it may move."""

    move: F64  # (N,) 0 at and above the nostrils, 1 from the upper lip down
    jaw: F64  # (N,) 1 from the lower inner lip down, 0 from the upper inner lip up and beside the face
    near: F64  # (N,) 1 within half a mouth width of the mouth's centre, 0 from 1.5 widths
    down: F64  # (2,) unit vector, the face's downward direction in frame pixels

    @classmethod
    def of(cls, points: F32, alignment: CropAlignment) -> FaceFrame:
        up = alignment.points_to_crop(points).astype(np.float64)
        y, x = up[:, 1], up[:, 0]
        y_nose, y_lip = float(y[list(NOSTRILS)].max()), y[UPPER_LIP_TOP]
        y_nose += NOSE_MARGIN * (y_lip - y_nose)  # the skin right under the nostrils stays too
        move = _smoothstep((y - y_nose) / max(y_lip - y_nose, 1e-3))
        move[y <= y_nose] = 0.0
        y_upper = y[UPPER_LIP_INNER]
        below = _smoothstep((y - y_upper) / max(y[LOWER_LIP_INNER] - y_upper, 1e-3))
        x_mid = 0.5 * (x[MOUTH_CORNER_RIGHT] + x[MOUTH_CORNER_LEFT])
        half_width = max(float(np.abs(x - x_mid).max()), 1e-3)
        beside = 1.0 - _smoothstep(np.abs(x - x_mid) / half_width * 1.2)
        width = max(abs(x[MOUTH_CORNER_LEFT] - x[MOUTH_CORNER_RIGHT]), 1e-3)
        centre = up[list(MOUTH_OUTER)].mean(0)
        near = 1.0 - _smoothstep((np.linalg.norm(up - centre, axis=1) / width - 0.5) / 1.0)
        down = alignment.to_frame[:, 1] / max(float(np.linalg.norm(alignment.to_frame[:, 1])), 1e-9)
        return cls(move=move, jaw=below * beside * move, near=near, down=down)


def inside(points: F64, polygon: F64) -> NDArray[np.bool_]:
    """Which of `points` (N, 2) lie inside `polygon` (M, 2) (even-odd rule)."""
    x, y = points[:, 0:1], points[:, 1:2]
    x0, y0 = polygon[:, 0], polygon[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    at_x = x0 + (y - y0) * (x1 - x0) / np.where(y1 == y0, 1e-12, y1 - y0)
    return np.asarray((crosses & (x < at_x)).sum(1) % 2 == 1)


def target_shape(
    source: F32, generated: F32, alignment: CropAlignment, opening_gain: float = 1.0, closed: bool = False
) -> F32:
    """Where the frame's landmarks `source` (N, 2) must go for the mouth to take the shape of
    `generated` (N, 2, crop pixels).

    The generated points are registered onto the frame's on the stable points; the lips (the
    points on and inside the outer-lip ring) move to them, by their weight (none at or above the
    nostrils). The rest of the lower face follows the lips rather than the generated mesh (whose
    jaw line is less certain than its lips): the chin and jaw move with the lower lip, the skin
    between nose and mouth with the upper lip. The inner-lip gap is then scaled by
    `opening_gain`, or closed (`closed`), by moving the jaw."""
    face = FaceFrame.of(source, alignment)
    src = source.astype(np.float64)
    gen = generated.astype(np.float64) @ alignment.to_frame[:, :2].T + alignment.to_frame[:, 2]
    stable = list(STABLE)
    reg = similarity(gen[stable], src[stable])
    gen = gen @ reg[:, :2].T + reg[:, 2]
    ring = src[list(MOUTH_OUTER)]
    centre = ring.mean(0)
    lips = inside(centre + 1.05 * (src - centre), ring)
    lips[list(MOUTH_OUTER)] = True
    shift = np.zeros_like(src)
    shift[lips] = face.move[lips, None] * (gen[lips] - src[lips])
    lower = shift[list(LOWER_OUTER)].mean(0)
    upper = shift[list(UPPER_OUTER)].mean(0)
    rest = ~lips
    shift[rest] = (
        face.jaw[rest, None] * lower
        + (face.move[rest] * (1.0 - face.jaw[rest]) * face.near[rest])[:, None] * upper
    )
    target = src + shift
    pairs = list(zip(INNER_UPPER[1:-1], INNER_LOWER[1:-1], strict=True))
    pair_gaps = [float((target[lo] - target[up]) @ face.down) for up, lo in pairs]
    gap = float((target[LOWER_LIP_INNER] - target[UPPER_LIP_INNER]) @ face.down)
    wanted = 0.0 if closed else max(gap, 0.0) * opening_gain
    target += face.jaw[:, None] * (wanted - gap) * face.down[None, :]
    # then each facing pair of inner-lip points gets the same scaling (or closing) of its own gap,
    # so the lips close along their whole length and never cross
    for (up, lo), before in zip(pairs, pair_gaps, strict=True):
        pair_wanted = 0.0 if closed else max(before, 0.0) * opening_gain
        now = float((target[lo] - target[up]) @ face.down)
        target[lo] += (pair_wanted - now) * face.down
    return target.astype(np.float32)
