"""Face tracking (mediapipe face mesh, or MediaPipe's models on LiteRT where mediapipe does
not install), landmark semantics and the model's crop alignment.

numpy + OpenCV + a tracker only: shared by corpus generation, dataset preparation,
evaluation and the real-time path, so every part sees the same crop geometry.
`open_tracker(kind)` makes a tracker by name ("auto", "mediapipe", "tflite").
"""

from stablesync.face.align import CropAlignment, align_crop, crop_transform, paste_back_transform
from stablesync.face.factory import (
    TRACKER_KINDS,
    FaceTracker,
    describe_trackers,
    mediapipe_available,
    open_tracker,
    resolve_tracker,
    tflite_available,
)
from stablesync.face.landmarks import (
    LEFT_EYE,
    MOUTH_INNER,
    MOUTH_OUTER,
    RIGHT_EYE,
    eye_distance,
    mouth_opening,
)
from stablesync.face.model_files import ModelFiles, find_models
from stablesync.face.tflite_tracker import TFLiteFaceTracker
from stablesync.face.tracker import FaceMeshTracker, TrackedFace, TrackerUnavailable

__all__ = [
    "LEFT_EYE",
    "MOUTH_INNER",
    "MOUTH_OUTER",
    "RIGHT_EYE",
    "TRACKER_KINDS",
    "CropAlignment",
    "FaceMeshTracker",
    "FaceTracker",
    "ModelFiles",
    "TFLiteFaceTracker",
    "TrackedFace",
    "TrackerUnavailable",
    "align_crop",
    "crop_transform",
    "describe_trackers",
    "eye_distance",
    "find_models",
    "mediapipe_available",
    "mouth_opening",
    "open_tracker",
    "paste_back_transform",
    "resolve_tracker",
    "tflite_available",
]
