"""The rotated square region the face landmark model sees, as mediapipe's face mesh places it.

From a detection (box centre, eye keypoints) or from the previous frame's landmarks (their
bounding box's centre, eye corners 33 and 263): a square of 1.5 times the longer side,
rotated so that the eye line is horizontal. All in frame pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

ROI_SCALE = 1.5
# Eye corners of the 468-point mesh that set the rotation when tracking from landmarks.
_MESH_ROTATION_POINTS = (33, 263)


@dataclass(frozen=True)
class Roi:
    cx: float
    cy: float
    side: float
    rotation: float  # radians; positive turns the ROI's x axis towards +y (image down)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Axis-aligned box of the unrotated square (how mediapipe compares ROIs)."""
        h = self.side / 2.0
        return self.cx - h, self.cy - h, self.cx + h, self.cy + h

    def to_frame(self, size: int) -> NDArray[np.float64]:
        """(2, 3) affine from a (size x size) model input's pixels to frame pixels."""
        c, s = math.cos(self.rotation), math.sin(self.rotation)
        k = self.side / size
        half = size / 2.0
        lin = np.array([[c * k, -s * k], [s * k, c * k]])
        offset = np.array([self.cx, self.cy]) - lin @ np.array([half, half])
        return np.concatenate([lin, offset[:, None]], axis=1)

    def crop(
        self, frame: NDArray[np.uint8], size: int, border: int = cv2.BORDER_REPLICATE
    ) -> NDArray[np.uint8]:
        """The ROI resampled to (size, size, C), bilinear."""
        out = cv2.warpAffine(
            frame,
            self.to_frame(size),
            (size, size),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=border,
            borderValue=(0, 0, 0),
        )
        return np.asarray(out, dtype=np.uint8)

    def project(self, points: NDArray[np.float32], size: int) -> NDArray[np.float32]:
        """(N, 3) model-input points (x, y, z in input pixels) to frame pixels; z scales like x."""
        m = self.to_frame(size)
        out = np.empty_like(points, dtype=np.float32)
        out[:, :2] = points[:, :2] @ m[:, :2].T + m[:, 2]
        out[:, 2] = points[:, 2] * (self.side / size)
        return out


def _rotation(start: NDArray[np.float32], end: NDArray[np.float32]) -> float:
    angle = -math.atan2(-(float(end[1]) - float(start[1])), float(end[0]) - float(start[0]))
    return math.remainder(angle, 2.0 * math.pi)


def roi_from_box(
    box: tuple[float, float, float, float], start: NDArray[np.float32], end: NDArray[np.float32]
) -> Roi:
    """ROI of a pixel box whose rotation is set by the line from `start` to `end`."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * ROI_SCALE
    return Roi(cx=(x0 + x1) / 2.0, cy=(y0 + y1) / 2.0, side=side, rotation=_rotation(start, end))


def roi_from_landmarks(points: NDArray[np.float32]) -> Roi:
    """ROI for the next frame from this frame's (468, 2+) landmarks in pixels."""
    lo = points[:, :2].min(0)
    hi = points[:, :2].max(0)
    a, b = _MESH_ROTATION_POINTS
    return roi_from_box(
        (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])), points[a, :2], points[b, :2]
    )
