"""A video's aligned face crops at 25 fps: decode, resample in time, track, align."""

from __future__ import annotations

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


def resampled_frames(path: Path, fps: float) -> list[tuple[int, NDArray[np.uint8]]]:
    """(output index, frame) at `fps`: output frame k shows the source frame on screen at k / fps.

    A source frame is on screen from its time until the next frame's time (the last one for
    one source frame interval), so a 2 s clip gives 50 frames at 25 fps whatever its own rate.
    """
    out: list[tuple[int, NDArray[np.uint8]]] = []
    prev: tuple[NDArray[np.uint8], float] | None = None
    interval_s = 1.0 / fps
    k = 0
    for frame, pts_s in iter_video_frames(path):
        if prev is None:
            k = max(0, int(np.ceil(pts_s * fps - 1e-6)))
        else:
            interval_s = max(pts_s - prev[1], 1e-3)
            while k / fps < pts_s - 1e-6:
                out.append((k, prev[0]))
                k += 1
        prev = (frame, pts_s)
    if prev is not None:
        while k / fps < prev[1] + interval_s - 1e-6 or not out:
            out.append((k, prev[0]))
            k += 1
    return out


def track_video(
    path: Path, size: int, fps: float, tracker: FaceMeshTracker, max_missing_fraction: float
) -> CropTrack:
    source_fps, _, _ = video_info(path)
    frames = resampled_frames(path, fps)
    if not frames:
        raise UserError(f"{path}: holds no decodable video frames")
    points: list[NDArray[np.float32] | None] = []
    tracker.detect(np.zeros((16, 16, 3), np.uint8))  # drop the previous clip's track
    for _, frame in frames:
        faces = tracker.detect(frame)
        points.append(faces[0].points if faces else None)
    found = [i for i, p in enumerate(points) if p is not None]
    missing = len(points) - len(found)
    if not found or missing > max_missing_fraction * len(points):
        raise UserError(f"{path}: no face found in {missing} of {len(points)} frames")
    crops = np.zeros((len(frames), size, size, 3), np.uint8)
    marks = np.zeros((len(frames), 468, 2), np.float32)
    for i, (_, frame) in enumerate(frames):
        nearest = min(found, key=lambda j: abs(j - i))
        pts = points[nearest]
        assert pts is not None
        alignment = CropAlignment.from_landmarks(pts, size)
        crops[i] = align_crop(frame, alignment)
        marks[i] = alignment.points_to_crop(pts)
    return CropTrack(crops, marks, source_fps, missing)
