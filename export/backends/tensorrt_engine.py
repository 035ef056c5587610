"""The "tensorrt" backend and `--tensorrt` engine builds (native TensorRT 10 Python API; no torch).

Written to the TensorRT Python API documentation and UNVERIFIED on this project's machines
(TensorRT cannot be installed here). Build: `trt.Builder` -> network from `trt.OnnxParser` ->
builder config with the FP16 flag, one optimisation profile (batch 1..manifest.max_batch,
optimum 1) and a timing cache kept beside the engines -> `build_serialized_network`. Engines
are cached under a key of (graph sha256, TensorRT version, GPU name), so a second start
deserialises (`trt.Runtime.deserialize_cuda_engine`) instead of building. Inference:
`set_input_shape` + `set_tensor_address` + `execute_async_v3` on a CUDA stream, buffers from
cuda-python's runtime API (part of the `gpu` extra).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.errors import UserError
from stablesync.export.backends import engine_cache_dir
from stablesync.export.interface import FloatArray, ReferenceFeatures
from stablesync.export.manifest import Manifest, check_graph_file

INSTALL_HINT = "install the `gpu` extra: pip install 'stablesync[gpu]' (TensorRT 10, cuda-python; NVIDIA GPU)"


def require_tensorrt() -> Any:
    if importlib.util.find_spec("tensorrt") is None:
        raise UserError(f"--tensorrt / backend 'tensorrt': TensorRT is not installed; {INSTALL_HINT}")
    import tensorrt as trt

    return trt


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime
        except ImportError:
            raise UserError(f"backend 'tensorrt': cuda-python is not installed; {INSTALL_HINT}") from None
    return runtime


def _check(result: Any) -> Any:
    """cuda-python calls return (error, *values)."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA runtime error {err}")
    return values[0] if len(values) == 1 else values


def gpu_name() -> str:
    cudart = _cudart()
    props = _check(cudart.cudaGetDeviceProperties(0))
    name = props.name
    return (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\x00").strip()


def engine_key(graph_sha256: str, trt_version: str, gpu: str, max_batch: int) -> str:
    raw = f"{graph_sha256}|{trt_version}|{gpu}|fp16|batch1-{max_batch}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def _input_dims(manifest: Manifest) -> dict[str, tuple[int, ...]]:
    s = manifest.image_size
    dims: dict[str, tuple[int, ...]] = {
        "reference": (3, s, s),
        "frames": (3, s, s),
        "mels": (1, manifest.mel.n_mels, manifest.window_frames),
    }
    for name, shape in zip(manifest.feature_names(), manifest.feature_shapes, strict=True):
        dims[name] = shape
    return dims


def build_engine(
    onnx_path: Path, manifest: Manifest, graph: str, out_dir: Path, log: Callable[[str], None]
) -> Path:
    """Builds (or finds in the cache) the fp16 engine of one graph; returns its path."""
    trt = require_tensorrt()
    info = manifest.graphs[graph]
    out_dir.mkdir(parents=True, exist_ok=True)
    key = engine_key(info.sha256, trt.__version__, gpu_name(), manifest.max_batch)
    path = out_dir / f"{graph}-{key}.engine"
    if path.is_file():
        return path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"{onnx_path}: TensorRT's ONNX parser rejects it ({errors[:200]})")
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    profile = builder.create_optimization_profile()
    dims = _input_dims(manifest)
    for name in info.inputs:
        shape = dims[name]
        profile.set_shape(name, (1, *shape), (1, *shape), (manifest.max_batch, *shape))
    config.add_optimization_profile(profile)
    timing_path = out_dir / f"timing-{trt.__version__}.cache"
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, False)
    log(f"building TensorRT fp16 engine for {onnx_path.name} (batch 1..{manifest.max_batch})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"{onnx_path}: TensorRT could not build an engine (see its log above)")
    _atomic_write(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    _atomic_write(path, bytes(memoryview(serialized)))
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_bytes(data)
    tmp.replace(path)


def build_engines(directory: Path, manifest: Manifest, log: Callable[[str], None] = print) -> list[Path]:
    """`--tensorrt`: engines of reference.onnx and frame.onnx into DIR/tensorrt."""
    return [
        build_engine(directory / manifest.graphs[g].file, manifest, g, directory / "tensorrt", log)
        for g in ("reference", "frame")
    ]


class _TrtGraph:
    """One deserialised engine with its execution context, device buffers grown on demand."""

    def __init__(self, trt: Any, path: Path, manifest: Manifest, graph: str) -> None:
        self.cudart = _cudart()
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise UserError(f"{path}: TensorRT cannot deserialise this engine (another version or GPU?)")
        self.engine = engine
        self.context = engine.create_execution_context()
        self.inputs = list(manifest.graphs[graph].inputs)
        self.outputs = list(manifest.graphs[graph].outputs)
        self.stream = _check(self.cudart.cudaStreamCreate())
        self.buffers: dict[str, tuple[int, int]] = {}  # name -> (device pointer, bytes)
        self.max_batch = manifest.max_batch

    def __del__(self) -> None:
        for ptr, _ in getattr(self, "buffers", {}).values():
            self.cudart.cudaFree(ptr)

    def _buffer(self, name: str, nbytes: int) -> int:
        ptr, size = self.buffers.get(name, (0, 0))
        if size < nbytes:
            if ptr:
                _check(self.cudart.cudaFree(ptr))
            ptr = int(_check(self.cudart.cudaMalloc(nbytes)))
            self.buffers[name] = (ptr, nbytes)
        return ptr

    def run(self, feeds: list[FloatArray]) -> list[FloatArray]:
        batch = feeds[0].shape[0]
        if batch > self.max_batch:
            raise ValueError(f"tensorrt: batch {batch} exceeds the engine's profile (max {self.max_batch})")
        h2d, d2h = (
            self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        host_in = [np.ascontiguousarray(x, np.float32) for x in feeds]
        for name, array in zip(self.inputs, host_in, strict=True):
            ptr = self._buffer(name, array.nbytes)
            self.context.set_input_shape(name, array.shape)
            self.context.set_tensor_address(name, ptr)
            _check(self.cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, h2d, self.stream))
        results = []
        for name in self.outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            out = np.empty(shape, np.float32)
            ptr = self._buffer(name, out.nbytes)
            self.context.set_tensor_address(name, ptr)
            results.append((name, out, ptr))
        if not self.context.execute_async_v3(int(self.stream)):  # the raw cudaStream_t handle
            raise RuntimeError("tensorrt: execute_async_v3 failed")
        for _, out, ptr in results:
            _check(self.cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream))
        _check(self.cudart.cudaStreamSynchronize(self.stream))
        return [out for _, out, _ in results]


class TensorRTEngine:
    backend = "tensorrt"

    def __init__(self, directory: Path, manifest: Manifest) -> None:
        trt = require_tensorrt()
        self.manifest = manifest
        self._graphs: dict[str, _TrtGraph] = {}
        for graph in ("reference", "frame"):
            onnx_path = check_graph_file(directory, manifest, graph)
            engine = build_engine(onnx_path, manifest, graph, engine_cache_dir(directory), print)
            self._graphs[graph] = _TrtGraph(trt, engine, manifest, graph)

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        return tuple(self._graphs["reference"].run([images]))

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        return self._graphs["frame"].run([*features, frames, mels])[0]
