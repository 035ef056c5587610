"""Options and reporting shared by `stablesync run` and `stablesync demo` (the engine's options
by `serve` too)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import os
import sys
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from stablesync.errors import UserError
from stablesync.export.engine import Engine
from stablesync.face import resolve_tracker
from stablesync.realtime.cli.startup import StartUpBlock
from stablesync.realtime.local.runner import AudioSource, RunConfig, Runner, RunResult, VideoSource
from stablesync.realtime.local.sinks.preview import PreviewWindow, no_display_reason
from stablesync.realtime.pipeline.frames import RgbImage
from stablesync.realtime.pipeline.session import SessionConfig
from stablesync.realtime.pipeline.tracking import TrackingConfig


def add_engine_options(
    parser: argparse.ArgumentParser, threads_default: int = 1, threads_help: str = "onnxruntime CPU threads"
) -> None:
    from stablesync.realtime.pipeline.loading import profile_weights

    weights = parser.add_mutually_exclusive_group()
    weights.add_argument(
        "--weights", type=Path, default=None, help="export directory (default: the bundled cpu-rt weights)"
    )
    weights.add_argument(
        "--profile",
        dest="weights",
        type=profile_weights,
        metavar="NAME",
        help="a personal profile made by `stablesync enroll NAME` (its export directory)",
    )
    parser.add_argument(
        "--backend", default="auto", help="auto, ort-cpu, ort-cuda, ort-trt, tensorrt (torch only if named)"
    )
    parser.add_argument(
        "--threads", type=int, default=threads_default, help=f"{threads_help} (default {threads_default})"
    )
    parser.add_argument(
        "--tracker",
        default="auto",
        help="face tracker: auto (MediaPipe's models on LiteRT where installed, else mediapipe), "
        "tflite, mediapipe",
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
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    parser.add_argument(
        "--label",
        nargs="?",
        const="AI lip-sync",
        default=None,
        metavar="TEXT",
        help="visible corner badge on the frames the filter changes (default text: AI lip-sync)",
    )


def add_preview_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preview",
        action="store_true",
        help="show the output in a window where a display exists (q or Esc in it stops the run)",
    )
    parser.add_argument(
        "--mirror",
        action="store_true",
        help="with --preview: show it mirrored, as call apps show a self-view (the outputs are not)",
    )


def check_preview_options(args: argparse.Namespace) -> None:
    if args.mirror and not args.preview:
        raise UserError(
            "--mirror: mirrors the preview window only (the virtual camera and file never are,"
            " as in call apps); expected --preview with it"
        )


async def run_pipeline(
    args: argparse.Namespace,
    engine: Engine,
    sources: tuple[VideoSource, AudioSource],
    cfg: RunConfig,
    paced: bool,
    block: StartUpBlock,
) -> RunResult:
    """Runs the sources through the filter into `cfg`'s outputs, with the --preview window where
    one can open, after printing the start-up block (unless --quiet)."""
    # q in the window stops the run as Ctrl-C does; a window that did not open takes no frames
    window = PreviewWindow(lambda: runner.request_stop(), mirror=args.mirror) if args.preview else None
    if window is not None:
        cfg = dataclasses.replace(cfg, on_output=lambda out: window.show(out.image))
    runner = Runner(engine, *sources, cfg, paced=paced)
    opened = False
    if window is not None:
        why_not = no_display_reason() or await window.open()
        opened = why_not is None
        mirrored = " (mirrored)" if args.mirror else ""
        text = f"window '{window.title}'{mirrored}: q or Esc in it stops the run; closing it, only it"
        block.add("preview", text if opened else f"none: {why_not}; running without it")
        if args.quiet and not opened:
            print(f"preview: none: {why_not}; running without it", file=sys.stderr)
    if not args.quiet:
        print(block.text(), file=sys.stderr)
    try:
        return await runner.run()
    finally:
        if window is not None and opened:
            await window.close()


def session_config(args: argparse.Namespace, realtime: bool) -> SessionConfig:
    if not (math.isfinite(args.budget_ms) and args.budget_ms > 0):
        raise UserError(f"--budget-ms {args.budget_ms}: expected a positive number of milliseconds")
    if args.lookahead_ms is not None and not 0 <= args.lookahead_ms <= 200:
        raise UserError(f"--lookahead-ms {args.lookahead_ms}: expected 0 to 200")
    tracking = TrackingConfig(tracker=resolve_tracker(args.tracker))
    return SessionConfig(
        budget_ms=args.budget_ms,
        realtime=realtime,
        lookahead_ms=args.lookahead_ms,
        tracking=tracking,
        label=args.label or None,
    )


def check_positive(value: float | None, flag: str, unit: str, most: float = math.inf) -> None:
    """A finite number above 0 (and at most `most`), or None."""
    if value is not None and not (math.isfinite(value) and 0 < value <= most):
        limit = "" if math.isinf(most) else f" up to {most:g}"
        raise UserError(f"{flag} {value}: expected a positive number of {unit}{limit}")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _check_not_an_input(path: Path, flag: str, inputs: Mapping[str, Path | None]) -> None:
    for input_flag, input_path in inputs.items():
        if input_path is not None and _same_file(path, input_path):
            raise UserError(
                f"{flag} {path}: is also the {input_flag} input; expected another file (an input is never"
                " overwritten)"
            )


def _check_writable(probe: Path, flag: str, path: Path) -> None:
    """Creates (then removes) `probe` beside `path`: the folder takes new files."""
    existed = probe.exists()
    try:
        with probe.open("ab"):
            pass
        if not existed:
            probe.unlink()
    except OSError as exc:
        raise UserError(
            f"{flag} {path}: cannot write in {path.parent} ({exc.strerror or exc});"
            " expected a folder this user can create files in"
        ) from exc


def check_output_path(
    path: Path | None,
    flag: str = "--out",
    overwrite: bool = False,
    inputs: Mapping[str, Path | None] | None = None,
) -> None:
    """Before anything runs: a video file name in an existing, writable folder, that is not an
    input and, unless `overwrite`, not an existing file."""
    if path is None:
        return
    from stablesync.realtime.local.sinks.file import partial_path

    if path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise UserError(f"{flag} {path}: expected a file name ending in .mp4")
    if not path.parent.resolve().is_dir():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; expected a file name ending in .mp4")
    _check_not_an_input(path, flag, inputs or {})
    _check_not_an_input(partial_path(path), flag, inputs or {})
    if path.exists() and not overwrite:
        raise UserError(f"{flag} {path}: exists; pass --overwrite to replace it")
    _check_writable(partial_path(path), flag, path)


def check_stats_path(path: Path | None, inputs: Mapping[str, Path | None]) -> None:
    """Before anything runs: --stats-json names a file (not a folder) that is not an input."""
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"--stats-json {path}: is a folder; expected a file name ending in .json")
    _check_not_an_input(path, "--stats-json", inputs)
    if path.parent.is_dir():
        _check_writable(path.with_name(path.name + ".partial"), "--stats-json", path)


def check_face_photo(path: Path, image: RgbImage, crop_size: int) -> None:
    """Avatar mode: the photo must show a face the tracker finds, or nothing would be lip-synced."""
    from stablesync.realtime.pipeline.frames import VideoFrame
    from stablesync.realtime.pipeline.tracking import FaceFollower

    follower = FaceFollower(crop_size)
    try:
        found = follower.track(VideoFrame(image, 0, 0, 0)) is not None
    finally:
        follower.close()
    if not found:
        raise UserError(
            f"{path}: no face found in the photo; expected a photo of one face, facing the camera"
        )


def report(result: RunResult, stats_json: Path | None, extra: dict[str, object]) -> int:
    print(result.telemetry.summary_text(), file=sys.stderr)
    if result.out_path is not None:
        from stablesync.realtime.watermark.provenance import sign_run_output

        print(sign_run_output(result.out_path, result.telemetry.messages), file=sys.stderr)
        print(f"wrote {result.out_path}", file=sys.stderr)
    if stats_json is not None:
        data = dict(extra) | {"run": result.details, "error": result.error, "interrupted": result.interrupted}
        result.telemetry.write_json(stats_json, data)
        print(f"wrote {stats_json}", file=sys.stderr)
    if result.error is not None:
        raise UserError(result.error)
    if result.interrupted:
        print("stopped on request (Ctrl-C, SIGTERM, or q in the preview)", file=sys.stderr)
    return 0


def run_async(coro: Coroutine[Any, Any, RunResult]) -> RunResult:
    return asyncio.run(coro)
