"""Opening an export directory on a backend (`load_engine`). The interface every backend
implements is `stablesync.export.interface` (re-exported here).
"""

from __future__ import annotations

from pathlib import Path

from stablesync.errors import UserError
from stablesync.export.interface import Engine, FloatArray, ReferenceFeatures, split_features, stack_features

__all__ = ["Engine", "FloatArray", "ReferenceFeatures", "load_engine", "split_features", "stack_features"]


def load_engine(
    directory: str | Path,
    backend: str = "auto",
    *,
    intra_op_threads: int = 2,
    prefer_int8: bool = True,
    memory_arena: bool = True,
) -> Engine:
    """Opens an export directory (manifest.json + graphs) on a backend.

    backend: "auto" (the fastest available: tensorrt, ort-trt, ort-cuda, torch on CUDA, ort-cpu),
    "ort-cpu", "ort-cuda", "ort-trt", "tensorrt" or "torch". Only "torch" imports torch.
    `intra_op_threads`: onnxruntime CPU threads. `prefer_int8`: "ort-cpu" runs frame_int8.onnx
    when the export kept one. `memory_arena`: onnxruntime's CPU memory arena (off for a server whose
    batch sizes vary, see backends/ort.py). Bad artifacts give a one-line UserError naming the file.
    """
    from stablesync.export import backends
    from stablesync.export.manifest import read_manifest

    directory = Path(directory)
    manifest = read_manifest(directory)
    if backend == "auto":
        backend = backends.pick_auto()
    if backend not in backends.BACKENDS:
        raise UserError(
            f"backend {backend!r}: unknown; expected auto or one of {', '.join(backends.BACKENDS)}"
        )
    if backend.startswith("ort-"):
        from stablesync.export.backends.ort import OrtEngine

        return OrtEngine(
            directory, manifest, backend, intra_op_threads, prefer_int8, memory_arena=memory_arena
        )
    if backend == "tensorrt":
        from stablesync.export.backends.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(directory, manifest)
    from stablesync.export.backends.torch_engine import TorchEngine

    return TorchEngine(directory, manifest)
