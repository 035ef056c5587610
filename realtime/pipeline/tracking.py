"""Face tracking for one stream: the face mesh (LiteRT or mediapipe), choice of the face,
One-Euro smoothing, the model's crop, and the head pose that says when the reference must be
refreshed.

Not thread-safe (neither tracker is): a session calls it from its own single-thread
executor. Several faces: the largest one, kept while it stays on screen; another face takes
over only after being the largest for `switch_frames` frames in a row (no flicker between two
people of similar size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stablesync.face import CropAlignment, FaceTracker, TrackedFace, align_crop, open_tracker
from stablesync.face.landmarks import NOSE_TIP, eye_centres, eye_distance
from stablesync.realtime.pipeline.frames import NS_PER_S, VideoFrame
from stablesync.realtime.pipeline.smoothing import OneEuroConfig, OneEuroFilter


@dataclass(frozen=True)
class TrackingConfig:
    max_faces: int = 3
    switch_frames: int = 8
    lost_reset_s: float = 0.5  # after this long without a face the smoothing starts afresh
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)
    min_face_px: float = 40.0  # eye distance * 2.5 below this: too small to lip-sync
    tracker: str = "auto"  # stablesync.face.open_tracker: auto, mediapipe or tflite


@dataclass(frozen=True)
class HeadPose:
    roll_deg: float
    yaw: float  # nose offset from the eyes' midpoint, in eye distances (0: frontal)
    pitch: float  # nose drop below the eyes, in eye distances

    def distance(self, other: HeadPose) -> float:
        """A rough drift measure: 1.0 is ~20 degrees of yaw or pitch or 20 degrees of roll."""
        return max(
            abs(self.roll_deg - other.roll_deg) / 20.0,
            abs(self.yaw - other.yaw) / 0.3,
            abs(self.pitch - other.pitch) / 0.3,
        )


def head_pose(points: NDArray[np.float32]) -> HeadPose:
    right, left = eye_centres(points)
    d = max(eye_distance(points), 1e-6)
    axis = (left - right) / d
    roll = math.degrees(math.atan2(float(axis[1]), float(axis[0])))
    normal = np.array([-axis[1], axis[0]])
    rel = (points[NOSE_TIP, :2] - (left + right) / 2.0) / d
    return HeadPose(roll_deg=roll, yaw=float(rel @ axis), pitch=float(rel @ normal))


@dataclass(frozen=True)
class FaceTrack:
    points: NDArray[np.float32]  # (468, 2) smoothed landmarks, frame pixels (the crop's, steady)
    alignment: CropAlignment
    crop: NDArray[np.uint8]  # (S, S, 3) aligned RGB crop of this frame
    pose: HeadPose
    detected: bool  # False: landmarks reused from an earlier frame (tracking skipped)
    # (468, 2) this frame's landmarks as found, not smoothed: where the face is in these pixels
    # (the renderer's anchor; smoothed ones lag a moving head)
    raw_points: NDArray[np.float32] | None = None


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceFollower:
    def __init__(self, crop_size: int, cfg: TrackingConfig = TrackingConfig()) -> None:
        self.cfg = cfg
        self.crop_size = crop_size
        self._tracker: FaceTracker | None = None
        self._filter = OneEuroFilter(cfg.smoothing)
        self._current: TrackedFace | None = None
        self._challenger_frames = 0
        self._last_seen_ns: int | None = None
        self._last_points: NDArray[np.float32] | None = None
        self._last_raw: NDArray[np.float32] | None = None

    def _mesh(self) -> FaceTracker:
        if self._tracker is None:  # created on the executor thread that uses it
            self._tracker = open_tracker(self.cfg.tracker, max_faces=self.cfg.max_faces, video=True)
        return self._tracker

    def close(self) -> None:
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

    def _choose(self, faces: list[TrackedFace]) -> TrackedFace | None:
        faces = [f for f in faces if eye_distance(f.points) * 2.5 >= self.cfg.min_face_px]
        if not faces:
            return None
        largest = faces[0]
        if self._current is None:
            return largest
        prev_box = self._current.bbox
        same = max(faces, key=lambda f: _iou(f.bbox, prev_box))
        if _iou(same.bbox, prev_box) < 0.2:  # our face left: take the largest
            self._challenger_frames = 0
            return largest
        if same is largest:
            self._challenger_frames = 0
            return same
        self._challenger_frames += 1
        if self._challenger_frames >= self.cfg.switch_frames:
            self._challenger_frames = 0
            self._filter.reset()
            return largest
        return same

    def track(self, frame: VideoFrame, skip_detection: bool = False) -> FaceTrack | None:
        """The face of `frame`, or None (no usable face). `skip_detection` reuses the previous
        landmarks (the degraded mode under load); still frames reuse them too."""
        reuse = (skip_detection or frame.still) and self._last_points is not None
        if reuse:
            assert self._last_points is not None
            points = self._last_points
            raw = self._last_raw if self._last_raw is not None else points
            detected = False
        else:
            if (
                self._last_seen_ns is not None
                and frame.capture_ns - self._last_seen_ns > self.cfg.lost_reset_s * NS_PER_S
            ):
                self._filter.reset()
                self._current = None
            face = self._choose(self._mesh().detect(frame.image))
            if face is None:
                self._last_points = None
                return None
            self._current = face
            self._last_seen_ns = frame.capture_ns
            raw = face.points[:, :2].astype(np.float32)
            points = self._filter(raw, frame.capture_ns).astype(np.float32)
            self._last_points, self._last_raw = points, raw
            detected = True
        alignment = CropAlignment.from_landmarks(points, self.crop_size)
        crop = align_crop(frame.image, alignment)
        return FaceTrack(
            points=points,
            alignment=alignment,
            crop=crop,
            pose=head_pose(points),
            detected=detected,
            raw_points=raw,
        )
