"""mediapipe face mesh (0.10.21 `solutions` API, models bundled in the wheel: works offline).

One tracker per thread: mediapipe graphs are not thread-safe. `detect` returns every face,
largest first, with landmarks in pixel coordinates of the given frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stablesync.errors import UserError


class TrackerUnavailable(UserError):
    """The named tracker is unknown or not installed (a one-line CLI error)."""


@dataclass(frozen=True)
class TrackedFace:
    points: NDArray[np.float32]  # (468, 3): x, y in pixels, z in mediapipe's relative units

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        x0, y0 = self.points[:, :2].min(0)
        x1, y1 = self.points[:, :2].max(0)
        return float(x0), float(y0), float(x1), float(y1)

    @property
    def area_px(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return (x1 - x0) * (y1 - y0)


class FaceMeshTracker:
    """`video=True` tracks across frames (faster, uses the previous frame); False treats each
    image on its own (stills, shuffled frames)."""

    def __init__(
        self,
        max_faces: int = 1,
        video: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        try:
            import mediapipe as mp
        except ImportError as exc:  # Python >= 3.13: no mediapipe with the face mesh models
            raise TrackerUnavailable(
                "mediapipe is not installed: make trackers with stablesync.face.open_tracker, "
                "which falls back to the LiteRT tracker"
            ) from exc
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=not video,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def detect(self, frame_rgb: NDArray[np.uint8]) -> list[TrackedFace]:
        """Faces in an (H, W, 3) uint8 RGB frame, largest first; [] when there is none."""
        h, w = frame_rgb.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(frame_rgb))
        faces = []
        for lms in result.multi_face_landmarks or []:
            pts = np.array([(p.x * w, p.y * h, p.z * w) for p in lms.landmark], dtype=np.float32)
            faces.append(TrackedFace(points=pts))
        faces.sort(key=lambda f: f.area_px, reverse=True)
        return faces

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> FaceMeshTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
