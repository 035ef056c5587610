"""Inference backends behind `stablesync.export.load_engine`. Each module is imported only when used.

ort.py (onnxruntime: "ort-cpu", "ort-cuda", "ort-trt"), tensorrt_engine.py ("tensorrt", native
TensorRT), torch_engine.py ("torch": the only one that imports torch).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

BACKENDS = ("ort-cpu", "ort-cuda", "ort-trt", "tensorrt", "torch")
# Fastest first, for backend="auto". torch is preferred over ort-cpu only where CUDA exists.
AUTO_ORDER = ("tensorrt", "ort-trt", "ort-cuda", "torch", "ort-cpu")


def nvidia_gpu_present() -> bool:
    """A cheap look for an NVIDIA driver, so that "auto" never imports torch on a CPU machine."""
    return Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/nvidiactl").exists()


def available(backend: str) -> bool:
    """Whether `backend` can run here. Never imports torch unless an NVIDIA GPU is present."""
    if backend in ("ort-cpu", "ort-cuda", "ort-trt"):
        from stablesync.export.backends.ort import provider_available

        return provider_available(backend)
    if backend == "tensorrt":
        return nvidia_gpu_present() and importlib.util.find_spec("tensorrt") is not None
    if backend == "torch":
        return importlib.util.find_spec("torch") is not None
    raise ValueError(f"unknown backend {backend!r}")


def torch_cuda_available() -> bool:
    if not nvidia_gpu_present() or importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


def available_backends() -> list[str]:
    return [b for b in BACKENDS if available(b)]


def pick_auto() -> str:
    for backend in AUTO_ORDER:
        if backend == "torch":
            if torch_cuda_available():
                return backend
            continue
        if available(backend):
            return backend
    return "ort-cpu"


def engine_cache_dir(directory: Path) -> Path:
    """Where TensorRT engines of an export live: DIR/tensorrt where writable (`--tensorrt` puts
    them there), else the user's cache (e.g. for the read-only bundled weights)."""
    own = directory / "tensorrt"
    if (own.is_dir() and os.access(own, os.W_OK)) or (not own.exists() and os.access(directory, os.W_OK)):
        return own
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "stablesync" / "tensorrt"
