"""Face tracking (mediapipe face mesh), landmark semantics and the model's crop alignment.

numpy + OpenCV + mediapipe only: shared by corpus generation, dataset preparation,
evaluation and the real-time path, so every part sees the same crop geometry.
"""

from stablesync.face.align import CropAlignment, align_crop, crop_transform, paste_back_transform
from stablesync.face.landmarks import (
    LEFT_EYE,
    MOUTH_INNER,
    MOUTH_OUTER,
    RIGHT_EYE,
    eye_distance,
    mouth_opening,
)
from stablesync.face.tracker import FaceMeshTracker, TrackedFace

__all__ = [
    "LEFT_EYE",
    "MOUTH_INNER",
    "MOUTH_OUTER",
    "RIGHT_EYE",
    "CropAlignment",
    "FaceMeshTracker",
    "TrackedFace",
    "align_crop",
    "crop_transform",
    "eye_distance",
    "mouth_opening",
    "paste_back_transform",
]
