"""Which face tracker runs: MediaPipe's models on LiteRT (`TFLiteFaceTracker`) where their
files are installed, otherwise mediapipe's face mesh (0.10.21, Python < 3.13). Both give the
same 468-point mesh (the same two models, placed the same way); the LiteRT one costs about half
the CPU in video mode, because with a face tracked it looks for more faces every few frames
where mediapipe's graph runs its detector on every frame. `open_tracker` is the one place
trackers are made from a name.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from stablesync.face.tracker import TrackedFace, TrackerUnavailable

TRACKER_KINDS = ("auto", "mediapipe", "tflite")


class FaceTracker(Protocol):
    def detect(self, frame_rgb: NDArray[np.uint8]) -> list[TrackedFace]: ...

    def close(self) -> None: ...


def mediapipe_available() -> bool:
    """mediapipe with its face mesh models in the wheel (0.10.21; 0.10.30 and later have none)."""
    from stablesync.face.model_files import installed_mediapipe

    return installed_mediapipe() is not None


def tflite_available() -> bool:
    from stablesync.face.litert import runtime_available
    from stablesync.face.model_files import models_available

    return runtime_available() and models_available()


def resolve_tracker(kind: str = "auto") -> str:
    """The concrete tracker `kind` names ("auto": tflite if installed, else mediapipe)."""
    if kind not in TRACKER_KINDS:
        raise TrackerUnavailable(f"--tracker {kind}: expected one of {', '.join(TRACKER_KINDS)}")
    if kind in ("auto", "tflite") and tflite_available():
        return "tflite"
    if kind in ("auto", "mediapipe") and mediapipe_available():
        return "mediapipe"
    from stablesync.face.model_files import INSTALL_HINT

    if kind == "mediapipe":
        raise TrackerUnavailable(
            "--tracker mediapipe: mediapipe is not installed (mediapipe==0.10.21 exists for Python "
            "3.11 and 3.12 only); use --tracker tflite"
        )
    raise TrackerUnavailable(f"no face tracker installed: {INSTALL_HINT}")


def open_tracker(kind: str = "auto", max_faces: int = 1, video: bool = True) -> FaceTracker:
    """A new tracker (one per thread). `video=False` treats every image on its own."""
    if resolve_tracker(kind) == "mediapipe":
        from stablesync.face.tracker import FaceMeshTracker

        return FaceMeshTracker(max_faces=max_faces, video=video)
    from stablesync.face.tflite_tracker import TFLiteFaceTracker

    return TFLiteFaceTracker(max_faces=max_faces, video=video)


def describe_trackers() -> str:
    """One line: the tracker `auto` picks, what is installed, where the tflite models come from."""
    installed = [k for k, ok in (("tflite", tflite_available()), ("mediapipe", mediapipe_available())) if ok]
    if not installed:
        return "face tracker: none installed"
    line = f"face tracker: {installed[0]} (installed: {', '.join(installed)}"
    if "tflite" in installed:
        from stablesync.face.model_files import find_models

        line += f"; tflite models from {find_models().source}"
    return line + ")"
