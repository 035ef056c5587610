"""`stablesync eval --checkpoint CKPT --data DIR --out report.json`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Evaluate a lipsync checkpoint on a prepared split.")
    p.add_argument(
        "--checkpoint",
        required=True,
        help="lipsync checkpoint (safetensors), or an export folder holding one",
    )
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--out", required=True, help="report JSON to write")
    p.add_argument(
        "--syncnet",
        help="AVSyncNet checkpoint for the sync metrics (default: syncnet.safetensors beside CKPT)",
    )
    p.add_argument("--split", default="test", help="split to evaluate (default test, the held-out one)")
    p.add_argument("--max-clips", type=int, default=0, help="evaluate only the first N clips (0 = all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the reference-frame choice")
    p.add_argument("--no-lip-leak", action="store_true", help="skip the 3 lip-leak renders per clip")
    p.add_argument(
        "--lookahead-ms",
        type=float,
        default=None,
        help="end of each frame's audio window after the frame (default: the model's, as trained)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    return p


def check_split(data: Path, split: str) -> None:
    """The split list must name clips: a corpus made without any (few clips) is said as such."""
    from stablesync.errors import UserError

    list_path = data / f"{split}.txt"
    if list_path.is_file() and not list_path.read_text().split():
        raise UserError(
            f"{data}: the {split} split is empty ({list_path.name} lists no clip); expected a prepared"
            f" corpus with {split} clips (`stablesync data synth` puts clip i in test when i % 10 == 2,"
            " in val when i % 10 == 1: make at least 3 clips) or another --split"
        )


def main(args: argparse.Namespace) -> int:
    import torch

    from stablesync import checkpoint
    from stablesync.errors import UserError
    from stablesync.evaluation.run import REPORT_KEYS, EvalOptions, evaluate
    from stablesync.models.lipsync import LipSyncModel
    from stablesync.models.syncnet import AVSyncNet
    from stablesync.train.data import PreparedData

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ckpt = Path(args.checkpoint)
    if ckpt.is_dir():  # an export folder (the shipped weights): its lipsync checkpoint
        ckpt = ckpt / "lipsync.safetensors"
    model, _ = checkpoint.load(ckpt, expect_arch="lipsync")  # a missing CKPT is reported first
    syncnet_path = Path(args.syncnet) if args.syncnet else ckpt.parent / "syncnet.safetensors"
    if not syncnet_path.is_file():
        raise UserError(f"{syncnet_path}: AVSyncNet checkpoint not found (pass --syncnet)")
    syncnet, _ = checkpoint.load(syncnet_path, expect_arch="avsyncnet")
    assert isinstance(model, LipSyncModel) and isinstance(syncnet, AVSyncNet)
    meta = checkpoint.read_metadata(ckpt)
    check_split(Path(args.data), args.split)
    data = PreparedData(args.data, args.split)
    if data.size != model.cfg.generator.image_size:
        raise UserError(
            f"{args.data}: crops are {data.size} px, the model makes {model.cfg.generator.image_size} px"
        )
    opts = EvalOptions(
        split=args.split,
        max_clips=args.max_clips,
        seed=args.seed,
        use_silent=meta.get("use_silent", "true") == "true",
        lip_leak=not args.no_lip_leak,
        lookahead_ms=args.lookahead_ms,
    )
    if args.lookahead_ms is not None and not 0 <= args.lookahead_ms <= 200:
        raise UserError(f"--lookahead-ms {args.lookahead_ms}: expected 0 to 200")

    def progress(done: int, total: int, clip_id: str) -> None:
        print(f"\reval {done}/{total} {clip_id}", end="", file=sys.stderr, flush=True)

    report = evaluate(model, syncnet, data, opts, progress)
    print(file=sys.stderr)
    report = {
        "checkpoint": str(ckpt),
        "syncnet": str(syncnet_path),
        "data": str(args.data),
        "split": args.split,
        "use_silent": opts.use_silent,
        "lookahead_ms": model.cfg.lookahead_ms if opts.lookahead_ms is None else opts.lookahead_ms,
        **report,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    tmp.replace(out)
    print(
        json.dumps(
            {
                "generated": {k: report.get(k) for k in REPORT_KEYS},
                "ground_truth": {k: report["ground_truth"].get(k) for k in REPORT_KEYS},
            }
        )
    )
    return 0
