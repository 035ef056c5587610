"""The face's outline as a layer edge: the moved face is laid over the frame's own neck.

When the mouth opens further than in the frame, the chin moves down over the neck. A warp that
is continuous everywhere has to squeeze the neck between the moved chin and a fixed ring around
the jaw: the chin's own shadow is pressed into a hard band that follows the ring's straight
segments (on real faces a pointed, polygonal chin, and the changed region's edge running as a
straight line under it). A real chin covers the neck instead.

So the warp is kept only inside the face's outline: the jaw line as a smooth curve (Catmull-Rom
through the jaw points), the frame's or the moved one, whichever is further out, pushed out a
little from the nose tip to keep the chin's own edge. Outside it the frame's own pixels stay
(the warp's maps are the identity there: `piecewise.backward_maps`' `keep`). Where the chin
rises, the warp must fill the neck the chin uncovers (there is no other picture of it), and it
moves pixels out to its fixed ring: there the outline goes out to the ring, beyond which nothing
moves anyway (an edge inside it would cut the warp where it still moves: a seam). The warp's
move fades across the outline over about two pixels (the outline is drawn on the maps' grid,
twice as coarse as the frame, and the maps are interpolated): the layer edge falls on the face's
own edge, where the picture already changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stablesync.face.landmarks import JAW, NOSE_TIP

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]


@dataclass(frozen=True)
class ContourConfig:
    margin: float = 1.02  # the outline pushed out from the nose tip by this factor
    samples: int = 4  # points of the smooth curve per stretch between two jaw points
    edge_px: float = 6.0  # how far beyond the outline its soft edge may still move pixels
    # a jaw point that moves in by this share of its distance from the nose tip has the outline
    # out at the ring (plus `ring_clearance`); less, part of the way
    inward_full: float = 0.01
    ring_clearance: float = 0.02


def smooth_curve(points: F64, samples: int) -> F64:
    """A Catmull-Rom curve through (M, 2) `points`, `samples` points per stretch, the last point
    included: ((M - 1) * samples + 1, 2)."""
    p = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    p0, p1, p2, p3 = p[:-3, None], p[1:-2, None], p[2:-1, None], p[3:, None]  # (M - 1, 1, 2) each
    t = (np.arange(samples, dtype=np.float64) / samples)[None, :, None]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
        + (3 * p1 - p0 - 3 * p2 + p3) * t * t * t
    )
    return np.concatenate([curve.reshape(-1, 2), points[-1:]])


def further_jaw(points: F32, target: F32) -> tuple[F64, F64]:
    """The jaw line (len(JAW), 2) of `points` or of `target`, point by point whichever lies
    further from the nose tip, and how far each point moves in toward it, as a share of its
    distance (0 where it moves out)."""
    nose = points[NOSE_TIP, :2].astype(np.float64)
    jaw = points[list(JAW), :2].astype(np.float64)
    moved = target[list(JAW), :2].astype(np.float64)
    own, new = np.linalg.norm(jaw - nose, axis=1), np.linalg.norm(moved - nose, axis=1)
    further = np.where((new > own)[:, None], moved, jaw)
    return further, np.maximum(own - new, 0.0) / np.maximum(own, 1e-9)


def outline(points: F32, target: F32, cfg: ContourConfig, ring_scale: float) -> F64:
    """The lower face's outline (K, 2) in frame pixels: the smooth jaw curve of `points` or of
    `target`, point by point whichever lies further from the nose tip, pushed out by the margin;
    where the jaw moves in (the chin rising), out to the warp's fixed ring at `ring_scale` and a
    little beyond, since there the warp must fill what the chin uncovers up to the ring (a layer
    edge inside it would cut the warp where it still moves: a seam). Closed, it runs straight
    across the face between the jaw line's two ends."""
    nose = points[NOSE_TIP, :2].astype(np.float64)
    jaw, inward = further_jaw(points, target)
    share = np.minimum(inward / cfg.inward_full, 1.0)
    scale = cfg.margin + (ring_scale + cfg.ring_clearance - cfg.margin) * share
    return smooth_curve(nose + scale[:, None] * (jaw - nose), cfg.samples)


def outline_bounds(line: F64, cfg: ContourConfig) -> tuple[F64, F64]:
    """An `outline`'s bounding box (lowest x, y; highest x, y), its soft edge included."""
    return line.min(0) - cfg.edge_px, line.max(0) + cfg.edge_px
