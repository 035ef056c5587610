"""A video's aligned face crops at 25 fps: decode, resample in time, track, align."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stablesync.errors import UserError
from stablesync.face import CropAlignment, FaceMeshTracker, align_crop
from stablesync.media import iter_video_frames, video_info


@dataclass(frozen=True)
class CropTrack:
    frames: NDArray[np.uint8]  # (T, S, S, 3) RGB crops
    landmarks: NDArray[np.float32]  # (T, 468, 2) in crop pixels
    source_fps: float
    missing: int  # frames without a face, filled from the nearest tracked frame


def resampled_frames(path: Path, fps: float) -> Iterator[NDArray[np.uint8]]:
    """The frames at `fps`: output frame k shows the source frame on screen at k / fps.

    A source frame is on screen from its time until the next frame's time (the last one for
    one source frame interval), so a 2 s clip gives 50 frames at 25 fps whatever its own rate.
    Streams: holds one source frame at a time.
    """
    prev: tuple[NDArray[np.uint8], float] | None = None
    interval_s = 1.0 / fps
    k = emitted = 0
    for frame, pts_s in iter_video_frames(path):
        if prev is None:
            k = max(0, int(np.ceil(pts_s * fps - 1e-6)))
        else:
            interval_s = max(pts_s - prev[1], 1e-3)
            while k / fps < pts_s - 1e-6:
                yield prev[0]
                k, emitted = k + 1, emitted + 1
        prev = (frame, pts_s)
    if prev is not None:
        while k / fps < prev[1] + interval_s - 1e-6 or not emitted:
            yield prev[0]
            k, emitted = k + 1, emitted + 1


MAX_LEADING_MISSING = 250  # frames without a face kept in memory before the first face is found


def track_video(
    path: Path, size: int, fps: float, tracker: FaceMeshTracker, max_missing_fraction: float
) -> CropTrack:
    """Crops and crop-space landmarks per output frame. A frame without a face takes the
    alignment and landmarks of the last frame with one (of the first one, for leading frames)."""
    source_fps, _, _ = video_info(path)
    tracker.detect(np.zeros((16, 16, 3), np.uint8))  # drop the previous clip's track
    crops: list[NDArray[np.uint8]] = []
    marks: list[NDArray[np.float32]] = []
    leading: list[NDArray[np.uint8]] = []
    last: tuple[CropAlignment, NDArray[np.float32]] | None = None
    missing = total = 0
    for frame in resampled_frames(path, fps):
        total += 1
        faces = tracker.detect(frame)
        if faces:
            alignment = CropAlignment.from_landmarks(faces[0].points, size)
            last = (alignment, alignment.points_to_crop(faces[0].points))
            for held in leading:
                crops.append(align_crop(held, alignment))
                marks.append(last[1])
            leading = []
        else:
            missing += 1
            if last is None:
                if len(leading) >= MAX_LEADING_MISSING:
                    raise UserError(f"{path}: no face found in the first {len(leading)} frames")
                leading.append(frame)
                continue
        assert last is not None
        crops.append(align_crop(frame, last[0]))
        marks.append(last[1])
    if total == 0:
        raise UserError(f"{path}: holds no decodable video frames")
    if last is None or missing > max_missing_fraction * total:
        raise UserError(f"{path}: no face found in {missing} of {total} frames")
    return CropTrack(np.stack(crops), np.stack(marks).astype(np.float32), source_fps, missing)
