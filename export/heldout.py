"""`stablesync eval`'s held-out protocol run on an export's onnxruntime graphs instead of torch.

`python -m stablesync.export.heldout DIR --data PREPARED --graph frame|frame_int8 --out JSON [--split test]
[--max-clips N] [--no-lip-leak] [--threads 2]`

The same clips, reference draws, audio windows and measures as `stablesync eval`
(`stablesync.evaluation.run.evaluate`: LSE-C/D and offset by the AVSyncNet beside the weights,
PSNR, SSIM, LMD, mouth-opening r, lip leak, silent mouth), with each frame made by the "ort-cpu"
engine running `--graph`: frame.onnx (fp32) or frame_int8.onnx whatever its recorded check says.
So the int8 graph is judged by the figures the shipped weights are judged by. Torch is loaded
only to run the judge (AVSyncNet) and the protocol's tensors.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import numpy as np

from stablesync.errors import UserError
from stablesync.export.backends.ort import OrtEngine
from stablesync.export.manifest import read_manifest

if TYPE_CHECKING:
    import torch

GRAPHS = ("frame", "frame_int8")


def open_graph(directory: Path, graph: str, threads: int) -> OrtEngine:
    """The CPU engine of `directory` running `graph` (frame_int8 even where its check failed)."""
    manifest = read_manifest(directory)
    if graph not in manifest.graphs:
        raise UserError(
            f"{directory}: the export lists no {graph} graph (make one: python -m stablesync.export.quantize)"
        )
    if graph == "frame_int8":  # the recorded verdict is what this measures: not consulted here
        manifest = dataclasses.replace(manifest, int8_check=None, int8_psnr_db=99.0)
    engine = OrtEngine(directory, manifest, "ort-cpu", threads, prefer_int8=graph == "frame_int8")
    assert engine.frame_graph == graph
    return engine


class GraphModel:
    """What the evaluation protocol calls on a LipSyncModel (`eval`, `cfg.lookahead_ms`,
    `encode_reference`, `generate`), answered by an onnxruntime engine."""

    def __init__(self, engine: OrtEngine) -> None:
        self.engine = engine
        self.cfg = SimpleNamespace(lookahead_ms=engine.manifest.lookahead_ms)

    def eval(self) -> GraphModel:
        return self

    def encode_reference(self, reference: torch.Tensor) -> list[torch.Tensor]:
        import torch

        feats = self.engine.encode_reference(reference.numpy().astype(np.float32))
        return [torch.from_numpy(f) for f in feats]

    def generate(
        self, features: list[torch.Tensor], frames: torch.Tensor, mels: torch.Tensor
    ) -> torch.Tensor:
        import torch

        feats = tuple(np.ascontiguousarray(f.numpy(), np.float32) for f in features)
        return torch.from_numpy(self.engine.generate(feats, frames.numpy(), mels.numpy()))


def evaluate_graph(
    directory: Path, data: Path, graph: str, split: str, max_clips: int, lip_leak: bool, threads: int
) -> dict[str, Any]:
    from typing import cast

    import torch

    from stablesync import checkpoint
    from stablesync.evaluation.cli import check_split
    from stablesync.evaluation.run import EvalOptions, evaluate
    from stablesync.models.lipsync import LipSyncModel
    from stablesync.models.syncnet import AVSyncNet
    from stablesync.train.data import PreparedData

    torch.set_num_threads(threads)
    engine = open_graph(directory, graph, threads)
    judge = directory / "syncnet.safetensors"
    if not judge.is_file():
        raise UserError(f"{judge}: AVSyncNet checkpoint not found (the export ships one beside its graphs)")
    syncnet, _ = checkpoint.load(judge, expect_arch="avsyncnet")
    assert isinstance(syncnet, AVSyncNet)
    check_split(data, split)
    prepared = PreparedData(data, split)
    if prepared.size != engine.manifest.image_size:
        size = engine.manifest.image_size
        raise UserError(f"{data}: crops are {prepared.size} px, the export makes {size} px")
    opts = EvalOptions(split=split, max_clips=max_clips, lip_leak=lip_leak)

    def progress(done: int, total: int, clip_id: str) -> None:
        print(f"\rheldout {graph} {done}/{total} {clip_id}", end="", file=sys.stderr, flush=True)

    # GraphModel answers every call the protocol makes of a LipSyncModel (see its docstring)
    report = evaluate(cast(LipSyncModel, GraphModel(engine)), syncnet, prepared, opts, progress)
    print(file=sys.stderr)
    return {"export": str(directory), "graph": graph, "data": str(data), "split": split, **report}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.export.heldout", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directory", type=Path, help="an export directory (manifest.json, graphs)")
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset")
    parser.add_argument("--graph", choices=GRAPHS, default="frame")
    parser.add_argument("--out", type=Path, required=True, help="the report as JSON")
    parser.add_argument("--split", default="test", help="split to evaluate (default test, the held-out one)")
    parser.add_argument("--max-clips", type=int, default=0, help="only the first N clips (0 = all)")
    parser.add_argument("--no-lip-leak", action="store_true", help="skip the 3 lip-leak renders per clip")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime and torch threads")
    args = parser.parse_args(argv)
    report = evaluate_graph(
        args.directory, args.data, args.graph, args.split, args.max_clips, not args.no_lip_leak, args.threads
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    keys = ("lse_c", "offset_accuracy", "psnr", "psnr_lower", "ssim", "lmd", "mouth_open_corr", "lip_leak")
    print(json.dumps({k: report.get(k) for k in keys}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
