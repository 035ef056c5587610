"""`stablesync export`: a checkpoint (or a preset's random weights) -> an engine directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from stablesync.errors import UserError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Export a lipsync checkpoint to ONNX (reference.onnx, frame.onnx, manifest.json),"
        " verified against PyTorch; optionally int8 and TensorRT engines.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="lipsync checkpoint (.safetensors) to export")
    src.add_argument("--random-init", action="store_true", help="untrained weights of --preset (for tests)")
    p.add_argument("--preset", default=None, help="preset name (with --random-init; default cpu-rt)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-init weights")
    p.add_argument("--out", type=Path, required=True, help="directory to write")
    p.add_argument("--overwrite", action="store_true", help="replace what --out already holds")
    p.add_argument("--syncnet", type=Path, default=None, help="AVSyncNet checkpoint: adds syncnet.onnx")
    p.add_argument("--int8", action="store_true", help="also frame_int8.onnx, kept if >= 35 dB PSNR vs fp32")
    p.add_argument("--tensorrt", action="store_true", help="also build fp16 TensorRT engines (gpu extra)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch of the TensorRT profile")
    p.add_argument(
        "--fp16-weights", action="store_true", help="store weights as fp16 (half the size; cast in-graph)"
    )
    p.add_argument("--corpus", type=Path, default=None, help="prepared dataset for the corpus parity check")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--parity-batch", type=int, default=2, help="batch of the parity check")
    p.add_argument(
        "--no-checkpoint",
        action="store_true",
        help="do not copy the checkpoint beside the graphs (no torch backend)",
    )
    p.add_argument("--threads", type=int, default=2, help="onnxruntime CPU threads for the checks")
    return p


def main(args: argparse.Namespace) -> int:
    if args.out.is_dir() and any(args.out.iterdir()) and not args.overwrite:
        raise UserError(f"--out {args.out}: holds files already; pass --overwrite to replace them")
    import torch

    from stablesync import checkpoint
    from stablesync.export.exporter import ExportOptions, export_model, load_for_export
    from stablesync.models import DEFAULT_PRESET, AVSyncNet, create, get_preset

    if args.max_batch < 1:
        raise UserError(f"--max-batch {args.max_batch}: expected >= 1")
    if args.parity_batch < 1:
        raise UserError(f"--parity-batch {args.parity_batch}: expected >= 1")
    if args.tensorrt:
        from stablesync.export.backends.tensorrt_engine import require_tensorrt

        require_tensorrt()  # fail before the slow part
    syncnet = None
    if args.random_init:
        name = args.preset or DEFAULT_PRESET
        get_preset(name)
        torch.manual_seed(args.seed)
        model = create(name)
        if args.syncnet is not None:
            raise UserError("--syncnet: give a checkpoint together with --checkpoint, not --random-init")
        preset = name
    else:
        model = load_for_export(args.checkpoint)
        preset = args.preset
    if args.syncnet is not None:
        net, _ = checkpoint.load(args.syncnet, expect_arch="avsyncnet")
        assert isinstance(net, AVSyncNet)
        syncnet = net
    options = ExportOptions(
        opset=args.opset,
        exporter=args.exporter,
        fp16_weights=args.fp16_weights,
        int8=args.int8,
        tensorrt=args.tensorrt,
        max_batch=args.max_batch,
        parity_batch=args.parity_batch,
        corpus=args.corpus,
        intra_op_threads=args.threads,
        write_checkpoint=not args.no_checkpoint,
    )
    manifest = export_model(model, args.out, options, preset=preset, syncnet=syncnet)
    files = ", ".join(g.file for g in manifest.graphs.values())
    print(f"exported preset {manifest.preset} ({manifest.image_size}x{manifest.image_size}): {files}")
    return 0
