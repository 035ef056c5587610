"""onnxruntime engines: "ort-cpu", "ort-cuda" (CUDA provider), "ort-trt" (TensorRT provider). No torch.

CPU sessions: `intra_op_threads` threads (default 2: the real-time path shares two cores with
tracking and compositing), graph optimisation level "all" (folds batch norm and the fp16
weight casts), and thread pools that sleep when idle: onnxruntime's workers spin between calls
by default, which at 25 calls a second burns more CPU than the calls themselves.
"ort-cpu" runs `frame_int8.onnx` when `prefer_int8` and the export lists one whose recorded
quality check passed (`stablesync.export.manifest.int8_usable`); otherwise frame.onnx.
`memory_arena=False` gives the CPU provider no memory arena: its buffers go back to the heap
after each call. The arena keeps the largest buffers it ever handed out, which for a server
whose batch sizes vary with the sessions open grows its memory over a long run (measured:
`benchmarks/session_memory.py`); it saves about 5% of a call's time, which one session's
constant shapes can keep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from stablesync.errors import UserError
from stablesync.export.backends import engine_cache_dir
from stablesync.export.interface import FloatArray, ReferenceFeatures
from stablesync.export.manifest import Manifest, check_graph_file, int8_usable

PROVIDERS = {
    "ort-cpu": "CPUExecutionProvider",
    "ort-cuda": "CUDAExecutionProvider",
    "ort-trt": "TensorrtExecutionProvider",
}


# Session config keys that make onnxruntime's thread pools block instead of busy-waiting.
SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


def provider_available(backend: str) -> bool:
    return PROVIDERS[backend] in ort.get_available_providers()


def _trt_provider_options(directory: Path, manifest: Manifest, graph: str) -> dict[str, Any]:
    s, w, n = manifest.image_size, manifest.window_frames, manifest.mel.n_mels
    dims = {"reference": f"3x{s}x{s}", "frames": f"3x{s}x{s}", "mels": f"1x{n}x{w}"}
    for name, (c, h, wd) in zip(manifest.feature_names(), manifest.feature_shapes, strict=True):
        dims[name] = f"{c}x{h}x{wd}"
    inputs = manifest.graphs[graph].inputs

    def profile(batch: int) -> str:
        return ",".join(f"{name}:{batch}x{dims[name]}" for name in inputs)

    cache = engine_cache_dir(directory) / "ort-trt"
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache),
        "trt_profile_min_shapes": profile(1),
        "trt_profile_opt_shapes": profile(1),
        "trt_profile_max_shapes": profile(manifest.max_batch),
    }


def open_session(
    path: Path,
    backend: str = "ort-cpu",
    intra_op_threads: int = 2,
    provider_options: dict[str, Any] | None = None,
    *,
    memory_arena: bool = True,
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = memory_arena
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Memory patterns plan one arena layout per input shape and keep it: with the batcher's
    # varying batch sizes beside sessions opening and closing, serve's RSS grew by ~94 MB over
    # 150 sessions with them and ~38 MB without (benchmarks/session_memory.py), for a 2-5%
    # slower generate.
    options.enable_mem_pattern = False
    options.log_severity_level = 3
    for key in SPIN_KEYS:
        options.add_session_config_entry(key, "0")
    providers: list[Any] = []
    if backend == "ort-trt":
        providers.append((PROVIDERS["ort-trt"], provider_options or {}))
    if backend in ("ort-trt", "ort-cuda"):
        providers.append(PROVIDERS["ort-cuda"])
    providers.append(PROVIDERS["ort-cpu"])
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for bad files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: onnxruntime cannot load it ({first[:200]})") from None


def check_session(path: Path, session: ort.InferenceSession, manifest: Manifest, graph: str) -> None:
    """The graph belongs to this manifest: same preset, and the input sizes the manifest says."""
    meta = session.get_modelmeta().custom_metadata_map
    preset = meta.get("stablesync.preset")
    if preset != manifest.preset:
        raise UserError(
            f"{path}: graph exported for preset {preset!r}, manifest.json says {manifest.preset!r}"
        )
    expected: dict[str, list[int]] = {
        "reference": [3, manifest.image_size, manifest.image_size],
        "frames": [3, manifest.image_size, manifest.image_size],
        "mels": [1, manifest.mel.n_mels, manifest.window_frames],
    }
    for name, shape in zip(manifest.feature_names(), manifest.feature_shapes, strict=True):
        expected[name] = list(shape)
    names = [i.name for i in session.get_inputs()]
    if names != list(manifest.graphs[graph].inputs):
        raise UserError(
            f"{path}: inputs {names}, manifest.json expects {list(manifest.graphs[graph].inputs)}"
        )
    for inp in session.get_inputs():
        if inp.name in expected and list(inp.shape[1:]) != expected[inp.name]:
            raise UserError(
                f"{path}: input {inp.name!r} has size {inp.shape[1:]}, manifest.json/preset"
                f" {manifest.preset!r} expects {expected[inp.name]}"
            )


class OrtEngine:
    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        backend: str = "ort-cpu",
        intra_op_threads: int = 2,
        prefer_int8: bool = True,
        *,
        memory_arena: bool = True,
    ) -> None:
        if not provider_available(backend):
            raise UserError(
                f"backend {backend!r}: onnxruntime has no {PROVIDERS[backend]} here"
                f" (available: {', '.join(ort.get_available_providers())}); install the `gpu` extra"
            )
        self.manifest = manifest
        self.backend = backend
        frame_graph = "frame"
        if backend == "ort-cpu" and prefer_int8 and int8_usable(manifest):
            frame_graph = "frame_int8"
        self.frame_graph = frame_graph
        self._sessions: dict[str, ort.InferenceSession] = {}
        for role, graph in (("reference", "reference"), ("frame", frame_graph)):
            path = check_graph_file(directory, manifest, graph)
            options = _trt_provider_options(directory, manifest, graph) if backend == "ort-trt" else None
            session = open_session(path, backend, intra_op_threads, options, memory_arena=memory_arena)
            check_session(path, session, manifest, graph)
            self._sessions[role] = session
        self._feature_names = manifest.feature_names()

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        s = self.manifest.image_size
        if images.ndim != 4 or images.shape[1:] != (3, s, s):
            raise ValueError(f"encode_reference: expected (B, 3, {s}, {s}), got {images.shape}")
        outs = self._sessions["reference"].run(None, {"reference": np.ascontiguousarray(images, np.float32)})
        return tuple(np.asarray(o, dtype=np.float32) for o in outs)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        if len(features) != len(self._feature_names):
            raise ValueError(f"generate: {len(features)} feature levels, expected {len(self._feature_names)}")
        feeds = {
            n: np.ascontiguousarray(f, np.float32) for n, f in zip(self._feature_names, features, strict=True)
        }
        feeds["frames"] = np.ascontiguousarray(frames, np.float32)
        feeds["mels"] = np.ascontiguousarray(mels, np.float32)
        (out,) = self._sessions["frame"].run(None, feeds)
        return np.asarray(out, dtype=np.float32)
