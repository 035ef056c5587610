"""Options and reporting shared by `stablesync run` and `stablesync demo`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from realtime.runner import RunResult
from realtime.session import SessionConfig
from realtime.tracking import TrackingConfig
from stablesync.errors import UserError
from stablesync.face import resolve_tracker


def add_engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", type=Path, default=None, help="export directory (default: the bundled cpu-rt weights)"
    )
    parser.add_argument(
        "--backend", default="auto", help="auto, ort-cpu, ort-cuda, ort-trt, tensorrt (torch only if named)"
    )
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime CPU threads (default 2)")
    parser.add_argument(
        "--tracker",
        default="auto",
        help="face tracker: auto (mediapipe where installed, else tflite), mediapipe, tflite",
    )
    parser.add_argument(
        "--budget-ms", type=float, default=250.0, help="capture-to-output deadline per frame (default 250)"
    )
    parser.add_argument(
        "--lookahead-ms",
        type=float,
        default=None,
        help="audio look-ahead of each frame's mel window (default: the model's)",
    )
    parser.add_argument(
        "--stats-json", type=Path, default=None, help="write the latency/fps summary (p50/p95/p99) here"
    )
    parser.add_argument("--quiet", action="store_true", help="no live status line")


def session_config(args: argparse.Namespace, realtime: bool) -> SessionConfig:
    if args.budget_ms <= 0:
        raise UserError(f"--budget-ms {args.budget_ms}: expected a positive number of milliseconds")
    if args.lookahead_ms is not None and not 0 <= args.lookahead_ms <= 200:
        raise UserError(f"--lookahead-ms {args.lookahead_ms}: expected 0 to 200")
    tracking = TrackingConfig(tracker=resolve_tracker(args.tracker))
    return SessionConfig(
        budget_ms=args.budget_ms, realtime=realtime, lookahead_ms=args.lookahead_ms, tracking=tracking
    )


def check_output_path(path: Path | None, flag: str = "--out") -> None:
    if path is None:
        return
    if path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise UserError(f"{flag} {path}: expected a file name ending in .mp4")
    if not path.parent.resolve().is_dir():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist")


def report(result: RunResult, stats_json: Path | None, extra: dict[str, object]) -> int:
    print(result.telemetry.summary_text(), file=sys.stderr)
    if result.out_path is not None:
        from realtime.watermark.provenance import sign_run_output

        print(sign_run_output(result.out_path, result.telemetry.messages), file=sys.stderr)
        print(f"wrote {result.out_path}", file=sys.stderr)
    if stats_json is not None:
        data = dict(extra) | {"run": result.details, "error": result.error, "interrupted": result.interrupted}
        result.telemetry.write_json(stats_json, data)
        print(f"wrote {stats_json}", file=sys.stderr)
    if result.error is not None:
        raise UserError(result.error)
    return 130 if result.interrupted else 0


def run_async(coro: Coroutine[Any, Any, RunResult]) -> RunResult:
    return asyncio.run(coro)
