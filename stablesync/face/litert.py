"""A .tflite model on LiteRT (`ai-edge-litert`, imported lazily)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.face.model_files import INSTALL_HINT, TFLiteUnavailable


def runtime_available() -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None


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
