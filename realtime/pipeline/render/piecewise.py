"""Piecewise-affine backward warps over a triangulation, limited to the triangles that move.

For every output pixel inside triangle k of the destination shape, the source position is the
affine image of the pixel under the map that takes triangle k of the destination onto triangle k
of the source. Neighbouring triangles share their edges, so the warp is continuous: no seam
between triangles, and none at the boundary of the moving region when its outer vertices are
fixed. Pixels outside every listed triangle are not touched (exactly the input's), nor are
those a `keep` mask clears.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import Delaunay

F32 = NDArray[np.float32]
Triangles = NDArray[np.int32]  # (K, 3) vertex indices


@dataclass(frozen=True)
class Box:
    """Integer pixel box [x0, x1) x [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0

    @property
    def shape(self) -> tuple[int, int]:
        return self.y1 - self.y0, self.x1 - self.x0

    @classmethod
    def around(cls, points: NDArray[np.floating], width: int, height: int, margin: int = 2) -> Box:  # type: ignore[type-arg]
        lo = np.floor(points.min(0)).astype(int) - margin
        hi = np.ceil(points.max(0)).astype(int) + margin + 1
        return cls(max(int(lo[0]), 0), max(int(lo[1]), 0), min(int(hi[0]), width), min(int(hi[1]), height))

    def within(self, other: Box) -> Box:
        """The part of this box inside `other` (empty when they do not meet)."""
        return Box(
            max(self.x0, other.x0), max(self.y0, other.y0), min(self.x1, other.x1), min(self.y1, other.y1)
        )

    def aligned(self, step: int, width: int, height: int) -> Box:
        """This box grown (right/down, else left/up) to sides that are multiples of `step`,
        within the frame; itself when the frame is too small for that."""
        if step <= 1:
            return self
        sides = [-(-(hi - lo) // step) * step for lo, hi in ((self.x0, self.x1), (self.y0, self.y1))]
        if sides[0] > width or sides[1] > height:
            return self
        x0, y0 = min(self.x0, width - sides[0]), min(self.y0, height - sides[1])
        return Box(x0, y0, x0 + sides[0], y0 + sides[1])


def triangulate(points: NDArray[np.floating]) -> Triangles:  # type: ignore[type-arg]
    """Delaunay triangles of (N, 2) points."""
    return np.asarray(Delaunay(np.asarray(points, np.float64)).simplices, dtype=np.int32)


def triangle_affines(
    dst: F32, src: F32, tris: Triangles, min_area_px: float = 0.05, min_height_px: float = 0.3
) -> tuple[F32, NDArray[np.bool_]]:
    """(K, 2, 3) affines taking each destination triangle onto its source triangle, and which
    triangles are usable (destination area above `min_area_px`, height above `min_height_px`)."""
    d = dst[tris].astype(np.float64)  # (K, 3, 2)
    s = src[tris].astype(np.float64)
    e1, e2 = d[:, 1] - d[:, 0], d[:, 2] - d[:, 0]  # destination edges
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    longest = np.maximum(np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1))
    longest = np.maximum(longest, np.linalg.norm(e2 - e1, axis=1))
    # slivers (thinner than `min_height_px`) would map their few pixels far away: left out
    usable = (0.5 * np.abs(det) > min_area_px) & (np.abs(det) / np.maximum(longest, 1e-9) > min_height_px)
    safe = np.where(usable, det, 1.0)
    # inverse of the edge matrix [e1 e2] (columns), then source edges times it
    inv = (
        np.stack([np.stack([e2[:, 1], -e2[:, 0]], 1), np.stack([-e1[:, 1], e1[:, 0]], 1)], 1)
        / safe[:, None, None]
    )
    f1, f2 = s[:, 1] - s[:, 0], s[:, 2] - s[:, 0]
    lin = np.einsum("kij,kjl->kil", np.stack([f1, f2], 2), inv)  # (K, 2, 2)
    shift = s[:, 0] - np.einsum("kij,kj->ki", lin, d[:, 0])
    affines = np.concatenate([lin, shift[:, :, None]], axis=2)
    return affines.astype(np.float32), usable


def backward_maps(
    dst: F32,
    src: F32,
    tris: Triangles,
    box: Box,
    step: int = 1,
    keep: NDArray[np.floating] | None = None,  # type: ignore[type-arg]
) -> tuple[F32, F32, NDArray[np.bool_]]:
    """(map_x, map_y, covered) over `box`, for cv2.remap: where `covered`, the source position of
    each pixel of the destination shape; elsewhere the pixel's own position (identity).

    `step` > 1 evaluates the warp exactly on a grid `step` times coarser (sample j at pixel
    x0 + step j + (step - 1) / 2, cv2.resize's convention) and interpolates it bilinearly: the warp
    is continuous and piecewise linear, so that differs from the exact maps only near triangle
    edges, by a fraction of the change of slope there. `box`'s sides must then be multiples of
    `step` (`Box.aligned`).

    `keep`, a polygon (K, 2) in frame pixels, limits the warp to its inside: outside, the maps
    are the identity. It is drawn on the grid the maps are computed on, so with `step` > 1 the
    move fades across its edge over one cell of that grid (the interpolation), and the box's
    outermost pixels are the identity too (the interpolation's edge)."""
    h, w = box.shape
    if step > 1 and (h % step or w % step):
        raise ValueError(f"box {w}x{h} is not a multiple of step {step}")
    affines, usable = triangle_affines(dst, src, tris)
    gh, gw = h // step, w // step
    index = np.zeros((gh, gw), np.int32)
    offset = np.array([box.x0 + (step - 1) / 2.0, box.y0 + (step - 1) / 2.0], np.float32)
    # 4 bits of sub-pixel precision: the rasterised edges follow the true ones
    corners = np.round((dst[tris] - offset) * (16.0 / step)).astype(np.int32)
    for k in np.flatnonzero(usable):
        cv2.fillConvexPoly(index, corners[k], (int(k) + 1,), lineType=cv2.LINE_8, shift=4)
    if keep is not None:  # outside the kept polygon, as outside every triangle: the identity
        inside = np.zeros((gh, gw), np.uint8)
        poly = np.round((np.asarray(keep, np.float64) - offset) * (16.0 / step)).astype(np.int32)
        cv2.fillPoly(inside, [poly], (1,), lineType=cv2.LINE_8, shift=4)
        index[inside == 0] = 0
    # per-triangle coefficients as lookup tables, entry 0 the identity (pixels outside every triangle)
    table = np.zeros((len(tris) + 1, 2, 3), np.float32)
    table[0] = [[1, 0, 0], [0, 1, 0]]
    table[1:] = affines
    xs = (offset[0] + step * np.arange(gw, dtype=np.float32))[None, :]
    ys = (offset[1] + step * np.arange(gh, dtype=np.float32))[:, None]
    coef = [np.take(table[:, r, c], index) for r in range(2) for c in range(3)]
    map_x = (coef[0] * xs + coef[1] * ys + coef[2]).astype(np.float32)
    map_y = (coef[3] * xs + coef[4] * ys + coef[5]).astype(np.float32)
    if step == 1:
        return map_x, map_y, index > 0
    map_x = np.asarray(cv2.resize(map_x, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    map_y = np.asarray(cv2.resize(map_y, (w, h), interpolation=cv2.INTER_LINEAR), np.float32)
    # outside the triangles at full resolution the maps are exactly the identity again (the
    # interpolation would move pixels up to a coarse cell beyond the moving region)
    covered_u8 = np.zeros((h, w), np.uint8)
    full = np.round((dst[tris[usable]] - np.array([box.x0, box.y0], np.float32)) * 16.0).astype(np.int32)
    # one call for all triangles: fillPoly's even-odd rule drops some shared edges, the
    # polylines put them back
    cv2.fillPoly(covered_u8, list(full), (1,), lineType=cv2.LINE_8, shift=4)
    cv2.polylines(covered_u8, list(full), True, (1,), 1, lineType=cv2.LINE_8, shift=4)
    if keep is not None:  # and outside the kept region, and on the box's rim (the resize's edge)
        covered_u8[np.asarray(cv2.resize(inside, (w, h), interpolation=cv2.INTER_NEAREST)) == 0] = 0
        covered_u8[[0, -1], :] = 0
        covered_u8[:, [0, -1]] = 0
    covered = covered_u8 > 0
    outside = ~covered
    grid_x = np.broadcast_to(np.arange(box.x0, box.x1, dtype=np.float32)[None, :], (h, w))
    grid_y = np.broadcast_to(np.arange(box.y0, box.y1, dtype=np.float32)[:, None], (h, w))
    np.copyto(map_x, grid_x, where=outside)
    np.copyto(map_y, grid_y, where=outside)
    return map_x, map_y, covered
