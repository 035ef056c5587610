"""The "torch" backend: the export's checkpoint run by PyTorch (the only backend that imports torch).

On CUDA it runs in fp16 and replays CUDA graphs (one captured per batch size, on static
buffers); on CPU it runs fp32 eager. It serves as the parity baseline and as the GPU path
where neither TensorRT nor onnxruntime-gpu is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stablesync import checkpoint
from stablesync.errors import UserError
from stablesync.export.fold import as_exported
from stablesync.export.graphs import weights_sha256
from stablesync.export.interface import FloatArray, ReferenceFeatures
from stablesync.export.manifest import Manifest
from stablesync.models import LipSyncModel


class _CudaGraphRunner:
    """Replays one captured CUDA graph per batch size of `generate`."""

    def __init__(self, model: LipSyncModel) -> None:
        self.model = model
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], torch.Tensor]] = {}

    def __call__(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        batch = inputs[0].shape[0]
        if batch not in self.graphs:
            static = [t.clone() for t in inputs]
            stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.no_grad():
                for _ in range(3):  # warm-up before capture, as the CUDA graphs docs ask
                    self.model.generate(static[:-2], static[-2], static[-1])
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.no_grad():
                out = self.model.generate(static[:-2], static[-2], static[-1])
            self.graphs[batch] = (graph, static, out)
        graph, static, out = self.graphs[batch]
        for dst, src in zip(static, inputs, strict=True):
            dst.copy_(src)
        graph.replay()
        return out


class TorchEngine:
    backend = "torch"

    def __init__(self, directory: Path, manifest: Manifest, use_cuda_graphs: bool = True) -> None:
        self.manifest = manifest
        if not manifest.checkpoint:
            raise UserError(f"{directory / 'manifest.json'}: names no checkpoint for the torch backend")
        path = directory / manifest.checkpoint
        model, _ = checkpoint.load(path, expect_arch="lipsync")
        assert isinstance(model, LipSyncModel)
        if weights_sha256(model) != manifest.weights_sha256:
            raise UserError(f"{path}: weights differ from those the graphs were exported from (checksum)")
        if model.cfg.generator.image_size != manifest.image_size:
            raise UserError(
                f"{path}: image size {model.cfg.generator.image_size},"
                f" manifest.json says {manifest.image_size}"
            )
        model.eval()  # folding reads the running statistics
        as_exported(model, fp16_weights=manifest.weights_dtype == "float16")  # what the graphs compute
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        self.model = model.to(self.device, self.dtype)
        self._graphs = (
            _CudaGraphRunner(self.model) if self.device.type == "cuda" and use_cuda_graphs else None
        )

    def _tensor(self, array: FloatArray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, np.float32)).to(self.device, self.dtype)

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        with torch.no_grad():
            feats = self.model.encode_reference(self._tensor(images))
        return tuple(f.float().cpu().numpy() for f in feats)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        inputs = [self._tensor(f) for f in features] + [self._tensor(frames), self._tensor(mels)]
        with torch.no_grad():
            if self._graphs is not None:
                out = self._graphs(inputs)
            else:
                out = self.model.generate(inputs[:-2], inputs[-2], inputs[-1])
        return out.float().cpu().numpy()
