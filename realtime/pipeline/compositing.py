"""Renders the generated mouth into the frame at the frame's own resolution.

The generator decides the mouth's shape and what shows inside it; the frame gives everything
else. Per frame:
1. the generated crop's landmarks are read with the face mesh (`render.shape`), held for a few
   frames when they cannot be read;
2. the target shape: the frame's landmarks below the nostrils moved to the generated ones;
3. the frame's own lower face is warped onto the target (`render.piecewise`: piecewise affine over
   the mesh and a fixed ring around the jaw, so nothing at or above the nostrils moves and the
   warp fades to nothing at the ring);
4. the warp is kept inside the face's outline only (`render.contour`): a chin that moves down
   is laid over the frame's own neck instead of squeezing it against the ring;
5. only the inside of the target's inner lips is filled from the generated crop, recoloured to
   the person (`render.mouth`), with a mask made and feathered in frame pixels.
No pixel outside the warped region changes, so there is no box and no edge at the crop's border.
When the generated shape has never been read, the frame passes through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.face import CropAlignment
from stablesync.face.align import TEMPLATE
from stablesync.face.landmarks import (
    JAW,
    LOWER_LIP_INNER,
    MOUTH_INNER,
    MOUTH_OUTER,
    NOSE_TIP,
    eye_distance,
    mouth_opening,
)
from stablesync.realtime.pipeline.render.contour import ContourConfig, further_jaw, outline, outline_bounds
from stablesync.realtime.pipeline.render.mouth import fill_interior, inner_triangles
from stablesync.realtime.pipeline.render.opening import OpeningConfig, OpeningRange
from stablesync.realtime.pipeline.render.piecewise import Box, Triangles, backward_maps, triangulate
from stablesync.realtime.pipeline.render.shape import MIN_LIP_SPAN, GeneratedShape, ShapeConfig, target_shape

F32 = NDArray[np.float32]
# "read": off this frame's generated crop; "held": the last one read (this crop unreadable);
# "silent": the last one read, closed (silence needs no new shape); "none": no shape, passed through.
ShapeSource = Literal["read", "held", "silent", "none"]
# The nostrils' base and the points beside it: fixed control points, so that no warped triangle
# reaches above the nostrils.
NOSTRIL_BASE = (2, 97, 326, 98, 327, 99, 328, 60, 290, 75, 305, 79, 309, 240, 460, 64, 294, 48, 278)


@dataclass(frozen=True)
class CompositeConfig:
    shape: ShapeConfig = field(default_factory=ShapeConfig)
    opening: OpeningConfig = field(default_factory=OpeningConfig)
    # fixed ring: the jaw line (the source's or the target's, whichever lies further out) pushed
    # out from the nose tip by this factor; the neck and collar beyond it do not move (at 1.2
    # from the source's jaw the neck below an opening chin was dragged along with it: on the
    # five real videos the changed region's edge ran 0.05-0.18 face heights along the neck)
    ring_scale: float = 1.08
    hold_frames: int = 8  # the last generated shape is reused this long when it cannot be read
    retriangulate_frames: int = 25  # the mesh's triangulation is rebuilt this often
    # inward feather of the inner-mouth mask, in eye distances, and at least `min_feather_px`
    # (at 0.015 alone, under a pixel on small faces, the generated inside of the mouth showed a
    # hard outline: a pasted look; 0.04 on every face cost sharp faces' lips their sharpness)
    feather_eyes: float = 0.015
    min_feather_px: float = 1.5
    min_move_px: float = 0.05  # triangles whose vertices all move less than this are not warped
    # the warp's maps are computed on a grid this much coarser than the frame and interpolated
    warp_step: int = 2
    # the lips and this share of their size around them are resampled bicubic, the rest of the
    # lower face bilinear (a fifth of the cost; it moves less and has less fine detail)
    cubic_margin: float = 0.4
    grid_cell: float = 0.06  # control points: one mesh point per cell this size (crop sizes), lips all
    # the warp is kept inside the face's outline only (`render.contour`); None: the whole ring
    contour: ContourConfig | None = field(default_factory=ContourConfig)


@dataclass(frozen=True)
class Composite:
    image: NDArray[np.uint8]  # the frame given, untouched, or a new array its caller may write to
    shape: ShapeSource  # where the mouth's shape came from on this frame
    target: F32 | None = None  # where the frame's landmarks were moved to (None: not moved)

    @property
    def unread(self) -> bool:
        """A shape was needed and could not be read off the generated crop."""
        return self.shape in ("held", "none")


def warp_frame(frame: NDArray[np.uint8], map_x: F32, map_y: F32, box: Box, lips: Box) -> NDArray[np.uint8]:
    """`frame` resampled over `box` at the maps' positions: bilinear, and bicubic within `lips`."""
    fixed, frac = cv2.convertMaps(map_x, map_y, cv2.CV_16SC2)
    border = cv2.BORDER_REPLICATE
    warped = np.asarray(cv2.remap(frame, fixed, frac, cv2.INTER_LINEAR, borderMode=border), np.uint8)
    x0, y0 = max(lips.x0, box.x0) - box.x0, max(lips.y0, box.y0) - box.y0
    x1, y1 = min(lips.x1, box.x1) - box.x0, min(lips.y1, box.y1) - box.y0
    if x1 > x0 and y1 > y0:
        sharp = cv2.remap(frame, fixed[y0:y1, x0:x1], frac[y0:y1, x0:x1], cv2.INTER_CUBIC, borderMode=border)
        warped[y0:y1, x0:x1] = sharp
    return warped


def ring_points(points: F32, ring_scale: float, target: F32 | None = None) -> F32:
    """The fixed ring around the lower face: each jaw point pushed out from the nose tip by
    `ring_scale`, from the source's jaw point or the target's, whichever is further out."""
    nose = points[NOSE_TIP]
    jaw = points[list(JAW)] if target is None else further_jaw(points, target)[0]
    return np.asarray(nose + ring_scale * (jaw - nose), np.float32)


def control_points(points: F32, ring_scale: float, target: F32 | None = None) -> F32:
    """The 468 landmarks plus the fixed ring around the lower face."""
    return np.concatenate([points, ring_points(points, ring_scale, target)]).astype(np.float32)


class Compositor:
    """One stream's renderer (holds the generated shape's tracker and smoothing: one thread)."""

    def __init__(self, crop_size: int, cfg: CompositeConfig = CompositeConfig()) -> None:
        self.cfg = cfg
        self.crop_size = crop_size
        self.shape = GeneratedShape(crop_size, cfg.shape)
        self._opening = OpeningRange(cfg.opening)
        self._held: F32 | None = None
        self._held_age = 0
        self._tris: Triangles | None = None
        self._tris_age = 0

    def close(self) -> None:
        self.shape.close()

    def _triangles(self, points: F32, alignment: CropAlignment) -> Triangles:
        """Delaunay triangles of the control points, made on the upright face with the mouth held
        open, with the mouth's inside triangulated on its own: no triangle spans the lips."""
        if self._tris is None or self._tris_age >= self.cfg.retriangulate_frames:
            upright = alignment.points_to_crop(points)
            down = np.array([0.0, 2 * MIN_LIP_SPAN * self.crop_size], np.float32)
            opened = upright.copy()
            lower = upright[:, 1] >= upright[LOWER_LIP_INNER, 1] - 1e-3
            opened[lower] += down
            ctrl = control_points(opened, self.cfg.ring_scale)
            subset = self._subset(upright, len(ctrl))
            tris = subset[triangulate(ctrl[subset])]
            inner = set(MOUTH_INNER)
            keep = [not all(int(v) in inner for v in t) for t in tris]
            poly = ctrl[list(MOUTH_INNER)].astype(np.float32)
            centroids = ctrl[tris].mean(1)
            for k, c in enumerate(centroids):
                if keep[k] and cv2.pointPolygonTest(poly, (float(c[0]), float(c[1])), False) > 0:
                    keep[k] = False
            # the inside of the mouth maps onto the frame's own (its real interior, or the dark
            # line between closed lips), the base the generated interior is blended over
            self._tris, self._tris_age = np.concatenate([tris[np.array(keep)], inner_triangles()]), 0
        self._tris_age += 1
        return self._tris

    def _subset(self, upright: F32, count: int) -> NDArray[np.int32]:
        """The control points the warp is made of: the lip rings, the nostrils' base, the jaw line
        and the ring, plus one mesh point per cell of a grid over the face below the eyes (the
        rest of the lower face moves smoothly: a coarser mesh warps it the same, for less)."""
        cell = self.cfg.grid_cell * self.crop_size
        keep = set(MOUTH_OUTER + MOUTH_INNER + JAW + NOSTRIL_BASE) | set(range(len(upright), count))
        cells: dict[tuple[int, int], int] = {}
        below_eyes = np.flatnonzero(upright[:, 1] > TEMPLATE[0, 1] * self.crop_size)
        for i in below_eyes:
            cells.setdefault((int(upright[i, 0] // cell), int(upright[i, 1] // cell)), int(i))
        return np.array(sorted(keep | set(cells.values())), np.int32)

    def _lips_box(self, points: F32, target: F32, width: int, height: int) -> Box:
        ring = np.concatenate([points[list(MOUTH_OUTER)], target[list(MOUTH_OUTER)]])
        lo, hi = ring.min(0), ring.max(0)
        pad = (hi - lo) * self.cfg.cubic_margin
        return Box.around(np.stack([lo - pad, hi + pad]), width, height)

    def _generated_shape(
        self, generated: NDArray[np.uint8], t_ns: int, closed: bool
    ) -> tuple[F32 | None, ShapeSource]:
        if closed and self._held is not None:
            return self._held, "silent"  # closed lips: the last shape, no reading needed
        measured = self.shape.measure(generated, t_ns)
        if measured is not None:
            self._held, self._held_age = measured, 0
            return measured, "read"
        self._held_age += 1
        if self._held is not None and self._held_age <= self.cfg.hold_frames:
            return self._held, "held"
        self._held = None
        self.shape.reset()
        return None, "none"

    def composite(
        self,
        frame: NDArray[np.uint8],
        generated: NDArray[np.uint8],
        points: F32,
        alignment: CropAlignment,
        t_ns: int,
        closed: bool = False,
    ) -> Composite:
        """`frame` with its mouth in the shape of the generated (S, S, 3) crop; `points` are the
        frame's (468, 2) landmarks and `alignment` the crop's; `closed` closes the lips (silence)."""
        self._opening.observe_own(mouth_opening(points))
        gen_points, source = self._generated_shape(generated, t_ns, closed)
        if gen_points is None:
            return Composite(image=frame, shape=source)
        points = points[:, :2].astype(np.float32)
        generated_opening = mouth_opening(gen_points)
        wanted = self._opening.map(generated_opening, speaking=source == "read")
        gain = wanted / max(generated_opening, 1e-6)
        target = target_shape(points, gen_points, alignment, gain, closed)
        source_ctrl = control_points(points, self.cfg.ring_scale, target)
        target_ctrl = np.concatenate([target, source_ctrl[len(points) :]])  # the ring stays put
        tris = self._triangles(points, alignment)
        moved = np.linalg.norm(target_ctrl - source_ctrl, axis=1) > self.cfg.min_move_px
        tris = tris[moved[tris].any(1)]
        h, w = frame.shape[:2]
        if len(tris) == 0:
            return Composite(image=frame, shape=source, target=target)
        used = np.unique(tris)
        box = Box.around(np.concatenate([target_ctrl[used], source_ctrl[used]]), w, h)
        keep = None
        if self.cfg.contour is not None:  # nothing beyond the face's outline moves
            keep = outline(points, target, self.cfg.contour, self.cfg.ring_scale)
            lo, hi = outline_bounds(keep, self.cfg.contour)
            box = box.within(Box.around(np.stack([lo, hi]), w, h, margin=0))
        if box.empty:
            return Composite(image=frame, shape=source, target=target)
        box = box.aligned(self.cfg.warp_step, w, h)
        step = self.cfg.warp_step if box.shape[0] % self.cfg.warp_step == 0 else 1
        map_x, map_y, _ = backward_maps(target_ctrl, source_ctrl, tris, box, step, keep)
        warped = warp_frame(frame, map_x, map_y, box, self._lips_box(points, target, w, h))
        feather_px = max(self.cfg.min_feather_px, self.cfg.feather_eyes * eye_distance(points))
        fill_interior(warped, box, frame, points, target, generated, gen_points, feather_px)
        out = frame.copy()
        out[box.y0 : box.y1, box.x0 : box.x1] = warped
        return Composite(image=out, shape=source, target=target)
