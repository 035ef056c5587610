"""The renderer (`stablesync.realtime.pipeline.compositing`) on corpus clips: the frame's own face, moved
into the generated mouth's shape. The "generated" crop is another frame of the same clip seen through
this frame's crop, so its mouth shape is known: the output must take it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from stablesync.evaluation.real_face import upper_face_mask
from stablesync.face import CropAlignment, FaceMeshTracker, align_crop
from stablesync.media import iter_video_frames
from stablesync.realtime.pipeline.compositing import Composite, CompositeConfig, Compositor
from stablesync.realtime.pipeline.render.opening import OpeningConfig

Image = NDArray[np.uint8]


def _opening(tracker: FaceMeshTracker, image: Image) -> float:
    from stablesync.evaluation.real_face import opening

    faces = tracker.detect(image)
    assert faces, "no face found"
    return opening(faces[0].points)


@pytest.fixture(scope="module")
def closed_and_open(tiny_corpus: Path) -> tuple[Image, Image, NDArray[np.float32]]:
    """(frame with the mouth most closed, frame with it most open, the closed frame's landmarks)."""
    clip = tiny_corpus / "clip00000"
    meta = json.loads(clip.with_suffix(".json").read_text())
    frames = [image for image, _ in iter_video_frames(clip.with_suffix(".mp4"))]
    mouth = np.asarray(meta["mouth_open"], float)[: len(frames)]
    i, j = int(np.argmin(mouth)), int(np.argmax(mouth))
    with FaceMeshTracker(video=False) as tracker:
        faces = tracker.detect(frames[i])
    return frames[i], frames[j], faces[0].points[:, :2].astype(np.float32)


def _composite(
    frame: Image, donor: Image, points: NDArray[np.float32], closed: bool = False, contour: bool = True
) -> Composite:
    alignment = CropAlignment.from_landmarks(points, 96)
    # the gain that makes corpus outputs open as their sources do (the opening read off a 96-px
    # crop reads about 1.25x small: 12 corpus clips); the opening range's own mapping to a
    # speaker's range is tested in tests/test_opening_range.py
    cfg = CompositeConfig(opening=OpeningConfig(start_gain=1.25))
    compositor = Compositor(96, cfg if contour else dataclasses.replace(cfg, contour=None))
    try:
        result = compositor.composite(
            frame, align_crop(donor, alignment), points, alignment, 0, closed=closed
        )
    finally:
        compositor.close()
    return result


def _render(
    frame: Image, donor: Image, points: NDArray[np.float32], closed: bool = False
) -> tuple[Image, bool, CropAlignment]:
    result = _composite(frame, donor, points, closed)
    return result.image, result.shape == "read", CropAlignment.from_landmarks(points, 96)


def test_shape_follows_the_generated_landmarks(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    frame, donor, points = closed_and_open
    out, measured, _ = _render(frame, donor, points)
    assert measured
    with FaceMeshTracker(video=False) as tracker:
        o_frame, o_donor, o_out = (_opening(tracker, im) for im in (frame, donor, out))
    assert o_donor - o_frame > 0.03, "the clip's frames do not differ enough to test"
    # the output opens as the donor does (within a quarter of the difference), not as the frame
    assert abs(o_out - o_donor) < 0.25 * (o_donor - o_frame), (o_frame, o_donor, o_out)


def test_silence_closes_the_lips(closed_and_open: tuple[Image, Image, NDArray[np.float32]]) -> None:
    frame, donor, points = closed_and_open
    out, _, _ = _render(frame, donor, points, closed=True)
    with FaceMeshTracker(video=False) as tracker:
        o_frame, o_donor, o_out = (_opening(tracker, im) for im in (frame, donor, out))
    assert o_out < o_frame + 0.25 * (o_donor - o_frame), (o_frame, o_donor, o_out)


def test_pixels_above_the_nostrils_are_unchanged(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    frame, donor, points = closed_and_open
    out, _, _ = _render(frame, donor, points)
    above = upper_face_mask(points, frame.shape[:2])
    assert above.sum() > 1000
    assert np.array_equal(out[above], frame[above])
    assert not np.array_equal(out, frame)  # the mouth did change


def test_no_edge_at_the_crop_border(closed_and_open: tuple[Image, Image, NDArray[np.float32]]) -> None:
    """The change does not stop at the crop's outline (in the frame): just outside each side it is
    at least half what it is just inside (a pasted crop's change stops there)."""
    frame, donor, points = closed_and_open
    out, _, alignment = _render(frame, donor, points)
    diff = np.abs(out.astype(int) - frame.astype(int)).max(-1)
    h, w = diff.shape
    s, band = 96, np.arange(1, 4)
    sides = {
        "top": ([(x, 0.0) for x in range(s)], (0.0, 1.0)),
        "bottom": ([(x, s - 1.0) for x in range(s)], (0.0, -1.0)),
        "left": ([(0.0, y) for y in range(s)], (1.0, 0.0)),
        "right": ([(s - 1.0, y) for y in range(s)], (-1.0, 0.0)),
    }
    for side, (outline, inward) in sides.items():
        means = []
        for sign in (1, -1):  # inside the crop, then outside it
            pts = np.array([np.add(p, sign * k * np.array(inward)) for p in outline for k in band])
            px = np.round(pts @ alignment.to_frame[:, :2].T + alignment.to_frame[:, 2]).astype(int)
            ok = (px[:, 0] >= 0) & (px[:, 0] < w) & (px[:, 1] >= 0) & (px[:, 1] < h)
            means.append(float(diff[px[ok, 1], px[ok, 0]].mean()) if ok.any() else 0.0)
        inside, outside = means
        assert outside >= 0.5 * inside - 1.0, (side, means)  # the change does not stop at the border


def test_unreadable_generated_shape_falls_back(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    """No face in the generated crop: the frame passes through untouched until a shape was read;
    after one, it is held for `hold_frames`, then the frame passes through again."""
    frame, donor, points = closed_and_open
    alignment = CropAlignment.from_landmarks(points, 96)
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    compositor = Compositor(96, CompositeConfig(hold_frames=2))
    try:
        first = compositor.composite(frame, noise, points, alignment, 0)
        assert first.shape == "none" and np.array_equal(first.image, frame)
        assert first.image is frame  # the caller's frame itself: the watermark must copy it
        good = compositor.composite(frame, align_crop(donor, alignment), points, alignment, 40_000_000)
        assert good.shape == "read" and not np.array_equal(good.image, frame)
        assert not np.shares_memory(good.image, frame)  # a new array: may be marked in place
        held = [compositor.composite(frame, noise, points, alignment, (k + 2) * 40_000_000) for k in range(3)]
    finally:
        compositor.close()
    assert [h.shape for h in held] == ["held", "held", "none"]
    assert not np.array_equal(held[0].image, frame) and not np.array_equal(held[1].image, frame)
    assert np.array_equal(held[2].image, frame)


def test_silence_reuses_the_last_shape_without_reading_the_crop(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    frame, donor, points = closed_and_open
    alignment = CropAlignment.from_landmarks(points, 96)
    noise = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    compositor = Compositor(96)
    try:
        assert compositor.composite(frame, align_crop(donor, alignment), points, alignment, 0).shape == "read"
        quiet = compositor.composite(frame, noise, points, alignment, 40_000_000, closed=True)
    finally:
        compositor.close()
    assert quiet.shape == "silent" and not quiet.unread


def _changed_beyond_jaw(
    frame: Image, result: Composite, points: NDArray[np.float32], scale: float
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(pixels below the nose tip beyond the jaw line pushed out by `scale` from the nose tip,
    the frame's or the target's (where the renderer moved it) whichever is further out; pixels
    that changed)."""
    import cv2

    from stablesync.face.landmarks import JAW, NOSE_TIP

    assert result.target is not None
    nose = points[NOSE_TIP]
    jaw, moved = points[list(JAW)], result.target[list(JAW)]
    further = np.where(
        (np.linalg.norm(moved - nose, axis=1) > np.linalg.norm(jaw - nose, axis=1))[:, None], moved, jaw
    )
    ring = nose + scale * (further - nose)
    within = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillPoly(within, [np.round(np.concatenate([ring, nose[None]])).astype(np.int32)], (1,))
    beyond = within == 0
    beyond[: int(nose[1])] = False  # below the nose tip only
    changed = np.abs(result.image.astype(int) - frame.astype(int)).max(-1) > 0
    return beyond, changed


def test_the_chin_covers_the_neck_instead_of_dragging_it(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    """An opening chin is laid over the neck (`render.contour`): beyond the jaw line (the frame's
    or the moved one, whichever is further out) by 7% of its distance from the nose tip, nothing
    changes (the outline is at 2%, drawn as a smooth curve that bulges past the jaw points'
    polygon, then feathered)."""
    frame, donor, points = closed_and_open
    result = _composite(frame, donor, points)
    beyond, changed = _changed_beyond_jaw(frame, result, points, 1.07)
    assert beyond.sum() > 1000 and changed.sum() > 100
    assert not changed[beyond].any(), int(changed[beyond].sum())


def test_without_the_face_layer_the_warp_squeezes_the_neck(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    """The check above can fail: the bare warp (no layer) squeezes the neck out to its ring at 8%
    (45 pixels changed beyond 7% on this clip)."""
    frame, donor, points = closed_and_open
    result = _composite(frame, donor, points, contour=False)
    beyond, changed = _changed_beyond_jaw(frame, result, points, 1.07)
    assert changed[beyond].sum() > 20, int(changed[beyond].sum())


def test_a_rising_chin_is_warped_out_to_the_ring_without_a_layer_edge(
    closed_and_open: tuple[Image, Image, NDArray[np.float32]],
) -> None:
    """The open frame given the closed one's mouth: the chin rises and the warp fills the neck it
    uncovers out to its ring. The face layer must not cut that warp (a seam where it still
    moves): the output is the bare warp's (no layer) to within the edge of the warp box."""
    closed, opened, _ = closed_and_open
    with FaceMeshTracker(video=False) as tracker:
        points = tracker.detect(opened)[0].points[:, :2].astype(np.float32)
    layered = _composite(opened, closed, points)
    bare = _composite(opened, closed, points, contour=False)
    assert layered.target is not None
    assert layered.target[152, 1] < points[152, 1] - 1.0  # the chin rose
    differ = np.abs(layered.image.astype(int) - bare.image.astype(int)).max(-1) > 2
    changed = np.abs(bare.image.astype(int) - opened.astype(int)).max(-1) > 2
    counts = (int(differ.sum()), int(changed.sum()))
    assert counts[1] > 100 and counts[0] <= 0.01 * counts[1], counts
