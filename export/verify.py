"""Checks an export before it is reported: onnx.checker (full check) and onnxruntime vs PyTorch.

Parity is measured on random inputs and on corpus-like inputs (`stablesync.export.sample_inputs`), per
graph, as the max absolute error; it must stay within `tolerance` (1e-4). With fp16-stored
weights the torch reference is the model with batch norm folded and then the weights rounded to
fp16 (`stablesync.export.fold`), which is exactly what the graphs hold, so the same 1e-4 applies, taken
relative to the largest output (the reference features are unbounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from numpy.typing import NDArray

from stablesync.errors import UserError
from stablesync.export.backends.ort import check_session, open_session
from stablesync.export.manifest import Manifest
from stablesync.export.sample_inputs import SampleInputs
from stablesync.models import AVSyncNet, LipSyncModel


@dataclass(frozen=True)
class Tolerance:
    max_abs: float = 1e-4
    relative: bool = False  # True: max_abs is relative to the largest |torch output|


def full_check(path: Path) -> None:
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise UserError(f"{path}: onnx.checker rejects the graph ({str(exc).splitlines()[0]})") from None


def _err(ort_out: list[NDArray[np.float32]], torch_out: list[torch.Tensor]) -> tuple[float, float]:
    """-> (max abs error, largest |torch value|) over all outputs."""
    err, scale = 0.0, 0.0
    for a, b in zip(ort_out, torch_out, strict=True):
        ref = b.detach().numpy()
        err = max(err, float(np.abs(a - ref).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return err, scale


def _check(name: str, err: float, scale: float, tol: Tolerance, path: Path) -> float:
    bound = tol.max_abs * (max(scale, 1.0) if tol.relative else 1.0)
    if not np.isfinite(err) or err > bound:
        raise UserError(
            f"{path}: onnxruntime differs from PyTorch by {err:.3g} on {name} (bound {bound:.1g})"
        )
    return err


def lipsync_parity(
    model: LipSyncModel,
    directory: Path,
    manifest: Manifest,
    samples: list[SampleInputs],
    tol: Tolerance,
    intra_op_threads: int = 2,
) -> dict[str, float]:
    """-> {"reference/random": err, "frame/random": err, "reference/corpus": ..., ...}."""
    sessions = {}
    for graph in ("reference", "frame"):
        path = directory / manifest.graphs[graph].file
        sessions[graph] = open_session(path, "ort-cpu", intra_op_threads)
        check_session(path, sessions[graph], manifest, graph)
    names = manifest.feature_names()
    errors: dict[str, float] = {}
    for sample in samples:
        kind = "random" if sample.source == "random" else "corpus"
        with torch.no_grad():
            feats = model.encode_reference(torch.from_numpy(sample.images))
            face = model.generate(feats, torch.from_numpy(sample.frames), torch.from_numpy(sample.mels))
        ort_feats = sessions["reference"].run(None, {"reference": sample.images})
        err, scale = _err(ort_feats, feats)
        errors[f"reference/{kind}"] = _check(
            f"reference, {sample.source} inputs",
            err,
            scale,
            tol,
            directory / manifest.graphs["reference"].file,
        )
        # The frame graph is fed torch's features, so its error is its own, not the reference's.
        feeds = {n: f.numpy() for n, f in zip(names, feats, strict=True)}
        feeds["frames"], feeds["mels"] = sample.frames, sample.mels
        err, scale = _err(sessions["frame"].run(None, feeds), [face])
        errors[f"frame/{kind}"] = _check(
            f"frame, {sample.source} inputs", err, scale, tol, directory / manifest.graphs["frame"].file
        )
    return errors


def syncnet_parity(
    syncnet: AVSyncNet, path: Path, samples: list[SampleInputs], tol: Tolerance
) -> dict[str, float]:
    session = open_session(path, "ort-cpu", 2)
    errors: dict[str, float] = {}
    for sample in samples:
        kind = "random" if sample.source == "random" else "corpus"
        n = syncnet.cfg.visual.n_frames
        frames = np.repeat(sample.frames[:, None], n, axis=1)  # (B, 5, 3, S, S)
        with torch.no_grad():
            sim = syncnet.similarity(torch.from_numpy(frames), torch.from_numpy(sample.mels))
        err, scale = _err(session.run(None, {"frames": frames, "mel": sample.mels}), [sim])
        errors[f"syncnet/{kind}"] = _check(f"syncnet, {sample.source} inputs", err, scale, tol, path)
    return errors
