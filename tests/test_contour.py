"""The face layer (`stablesync.realtime.pipeline.render.contour`): the moved face laid over the
frame's own pixels along a smooth outline of the jaw."""

from __future__ import annotations

import numpy as np

from stablesync.face.landmarks import JAW, NOSE_TIP
from stablesync.realtime.pipeline.render.contour import (
    ContourConfig,
    outline,
    smooth_curve,
)
from stablesync.realtime.pipeline.render.piecewise import Box, backward_maps


def _face(size: int = 200) -> np.ndarray:
    """468 points: the jaw on a half circle below the nose tip at the centre, the rest there."""
    points = np.full((468, 2), size / 2, np.float32)
    angles = np.linspace(0.0, np.pi, len(JAW))
    points[list(JAW)] = np.stack([size / 2 + 60 * np.cos(angles), size / 2 + 60 * np.sin(angles)], 1)
    points[NOSE_TIP] = (size / 2, size / 2)
    return points


def test_the_smooth_curve_runs_through_every_point_and_between_them_off_the_chords() -> None:
    points = _face()[list(JAW)].astype(np.float64)
    curve = smooth_curve(points, 4)
    assert curve.shape == ((len(JAW) - 1) * 4 + 1, 2)
    np.testing.assert_allclose(curve[::4], points, atol=1e-9)
    radius = np.linalg.norm(curve - 100.0, axis=1)
    # on a circle the chords' midpoints lie inside it; the curve stays on it
    chords = np.linalg.norm(0.5 * (points[1:] + points[:-1]) - 100.0, axis=1)
    assert np.abs(radius - 60).max() < 0.15 and chords.min() < 59.85


def test_the_outline_follows_the_further_jaw_and_goes_to_the_ring_where_it_rises() -> None:
    points = _face()
    target = points.copy()
    target[list(JAW), 1] += 10.0  # the jaw moves down: the outline follows the moved one
    line = outline(points, target, ContourConfig(), 1.08)
    assert line[:, 1].max() > 100 + 60 + 10  # past the moved chin by the margin
    target[list(JAW), 1] -= 20.0  # the jaw moves up: out to the ring (1.08) and beyond
    line = outline(points, target, ContourConfig(), 1.08)
    assert 100 + 60 * 1.08 < line[:, 1].max() < 100 + 60 * 1.11


def test_the_warp_is_the_identity_outside_the_kept_polygon() -> None:
    """`backward_maps` with `keep`: the warp's move inside the polygon, none outside, part of it
    on the edge (computed on a coarser grid: a soft edge, on the box's rim none)."""
    dst = np.array([[0, 0], [100, 0], [0, 100], [100, 100]], np.float32)
    src = dst + np.float32(5.0)  # every pixel samples 5 px down-right
    tris = np.array([[0, 1, 2], [1, 3, 2]], np.int32)
    box = Box(0, 0, 100, 100)
    keep = np.array([[-10, -10], [40.0, -10], [40.0, 110], [-10, 110]])  # x < 40
    for step in (1, 2):
        map_x, _, covered = backward_maps(dst, src, tris, box, step, keep)
        moved = map_x - np.arange(100, dtype=np.float32)[None, :]
        assert np.allclose(moved[5:95, 5:37], 5.0, atol=1e-3), step
        assert (moved[:, 46:] == 0).all() and not covered[:, 46:].any()
        edge = moved[50, 37:46]
        assert ((edge > 0.01) & (edge < 4.99)).any() == (step == 2)  # soft on the coarser grid
        if step == 2:  # the interpolation's edge
            assert (moved[[0, -1], :] == 0).all() and (moved[:, [0, -1]] == 0).all()
        # the soft edge stays within the outline's bounds (`outline_bounds` pads by edge_px)
        assert np.flatnonzero(moved[50]).max() <= 40 + ContourConfig().edge_px
