"""The torch modules that become the graphs, and their ONNX export (torch; only `stablesync export` uses it).

- reference.onnx: `reference` (B, 3, S, S) -> `feat0..featN-1` (G_S on silent audio, then G_L's
  identity encoder): run once per reference face.
- frame.onnx: `feat0..featN-1`, `frames` (B, 3, S, S), `mels` (B, 1, n_mels, W) -> `face`.
- syncnet.onnx: `frames` (B, 5, 3, S, S), `mel` (B, 1, n_mels, W) -> `similarity` (B,).
Every axis 0 is a dynamic batch. Each graph carries metadata (stablesync.preset, .graph,
.image_size) that `load_engine` checks against manifest.json.

Exporters: "torchscript" (torch.onnx.export(dynamo=False), the default: twice as fast to export,
same parity and speed here) or "dynamo" (torch.export-based, needs onnxscript).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from stablesync.models import AVSyncNet, LipSyncModel

EXPORTERS = ("torchscript", "dynamo")


class ReferenceGraph(nn.Module):
    """`model.encode_reference`, with the audio embedding of silence computed once at export.

    G_S always hears silence, so its audio embedding is a constant: storing the (1, A) vector
    instead of running the frozen audio encoder on a batch of silent mels keeps the audio
    encoder's weights (1.4M parameters in cpu-rt) out of reference.onnx. Parity is still
    checked against `model.encode_reference` itself.
    """

    silent_audio: torch.Tensor

    def __init__(self, model: LipSyncModel) -> None:
        super().__init__()
        self.model = model
        with torch.no_grad():
            self.register_buffer("silent_audio", model.audio_encoder(model.silent_mel).detach().clone())

    def forward(self, reference: torch.Tensor) -> tuple[torch.Tensor, ...]:
        g_s = self.model.silent
        audio = self.silent_audio.expand(reference.shape[0], -1)
        silent = g_s(g_s.encode_identity(reference), reference, audio)
        return tuple(self.model.talker.encode_identity(silent))


class FrameGraph(nn.Module):
    def __init__(self, model: LipSyncModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        *features, frames, mels = inputs
        return self.model.generate(list(features), frames, mels)


class SyncGraph(nn.Module):
    def __init__(self, syncnet: AVSyncNet) -> None:
        super().__init__()
        self.syncnet = syncnet

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        return self.syncnet.similarity(frames, mel)


def weights_sha256(model: nn.Module) -> str:
    """Checksum of the state dict (sorted keys, float32 values): equal for equal weights."""
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        t = value.detach().cpu()
        if t.is_floating_point():
            t = t.to(torch.float32)
        digest.update(key.encode())
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_graph(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    input_names: list[str],
    output_names: list[str],
    opset: int,
    exporter: str,
) -> onnx.ModelProto:
    """Exports `module(*args)` with a dynamic batch axis on every input and output; returns the model."""
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            batch = torch.export.Dim("batch", min=1, max=1024)
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=True,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_shapes=tuple({0: batch} for _ in args),
                optimize=True,
                verbose=False,
            )
        elif exporter == "torchscript":
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=input_names,
                output_names=output_names,
                dynamic_axes={name: {0: "batch"} for name in input_names + output_names},
                do_constant_folding=True,
            )
        else:
            raise ValueError(f"exporter {exporter!r}: expected one of {EXPORTERS}")
    return onnx.load(str(path))


def tag_graph(model: onnx.ModelProto, preset: str, graph: str, image_size: int) -> onnx.ModelProto:
    meta = {"stablesync.preset": preset, "stablesync.graph": graph, "stablesync.image_size": str(image_size)}
    kept = [p for p in model.metadata_props if p.key not in meta]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "stablesync"
    return model
