"""Piecewise-affine backward warps over a triangulation, limited to the triangles that move.

For every output pixel inside triangle k of the destination shape, the source position is the
affine image of the pixel under the map that takes triangle k of the destination onto triangle k
of the source. Neighbouring triangles share their edges, so the warp is continuous: no seam
between triangles, and none at the boundary of the moving region when its outer vertices are
fixed. Pixels outside every listed triangle are not touched (exactly the input's).
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


def backward_maps(dst: F32, src: F32, tris: Triangles, box: Box) -> tuple[F32, F32, NDArray[np.bool_]]:
    """(map_x, map_y, covered) over `box`, for cv2.remap: where `covered`, the source position of
    each pixel of the destination shape; elsewhere the pixel's own position (identity)."""
    h, w = box.shape
    affines, usable = triangle_affines(dst, src, tris)
    index = np.zeros((h, w), np.int32)
    offset = np.array([box.x0, box.y0], np.float32)
    # 4 bits of sub-pixel precision: the rasterised edges follow the true ones
    corners = np.round((dst[tris] - offset) * 16.0).astype(np.int32)
    for k in np.flatnonzero(usable):
        cv2.fillConvexPoly(index, corners[k], (int(k) + 1,), lineType=cv2.LINE_8, shift=4)
    # per-triangle coefficients as lookup tables, entry 0 the identity (pixels outside every triangle)
    table = np.zeros((len(tris) + 1, 2, 3), np.float32)
    table[0] = [[1, 0, 0], [0, 1, 0]]
    table[1:] = affines
    xs = np.arange(box.x0, box.x1, dtype=np.float32)[None, :]
    ys = np.arange(box.y0, box.y1, dtype=np.float32)[:, None]
    coef = [np.take(table[:, r, c], index) for r in range(2) for c in range(3)]
    map_x = coef[0] * xs + coef[1] * ys + coef[2]
    map_y = coef[3] * xs + coef[4] * ys + coef[5]
    return map_x.astype(np.float32), map_y.astype(np.float32), index > 0
