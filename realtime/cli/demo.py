"""`stablesync demo`: the bundled face and speech through the same real-time pipeline as `run`,
paced at real time (or `--fast`), written to an mp4, with the latency summary."""

from __future__ import annotations

import argparse
from pathlib import Path

from stablesync.bundled import demo_assets
from stablesync.errors import UserError
from stablesync.export.manifest import read_manifest
from stablesync.realtime.cli.common import (
    add_engine_options,
    add_preview_options,
    check_face_photo,
    check_output_path,
    check_preview_options,
    check_stats_path,
    report,
    run_async,
    run_pipeline,
    session_config,
)
from stablesync.realtime.cli.startup import StartUpBlock
from stablesync.realtime.local.runner import RunConfig, RunResult
from stablesync.realtime.local.sources import (
    AudioFileSource,
    ImageSource,
    load_audio_file,
    load_captured_audio,
    load_image,
)
from stablesync.realtime.pipeline.loading import open_engine, resolve_weights


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("demo.mp4"), help="mp4 to write (default demo.mp4)")
    parser.add_argument("--fast", action="store_true", help="as fast as possible instead of real time")
    parser.add_argument(
        "--face", type=Path, default=None, help="another face photo (default: the bundled one)"
    )
    parser.add_argument(
        "--audio", type=Path, default=None, help="another speech file (default: the bundled one)"
    )
    add_engine_options(parser)
    add_preview_options(parser)
    parser.add_argument(
        "--serve",
        nargs="?",
        type=int,
        const=8080,
        default=None,
        metavar="PORT",
        help="instead of a file, open the sample in the WebRTC page at http://127.0.0.1:PORT/?source=sample",
    )
    return parser


async def _demo(args: argparse.Namespace) -> RunResult:
    face_path, speech_path = _inputs(args)
    image = load_image(face_path)
    manifest = read_manifest(resolve_weights(args.weights))
    rate = manifest.mel.sample_rate_hz
    audio = AudioFileSource(
        load_audio_file(speech_path, rate), rate, captured=load_captured_audio(speech_path)
    )
    if args.face is not None:
        check_face_photo(face_path, image, manifest.image_size)
    engine = open_engine(args.weights, args.backend, args.threads)
    video = ImageSource(image, fps=manifest.fps, duration_s=audio.duration_s)
    cfg = RunConfig(
        session=session_config(args, realtime=not args.fast),
        out_path=args.out,
        fps=manifest.fps,
        live_status=not args.quiet,
    )
    block = StartUpBlock().video(video, face_path).audio(audio, speech_path).engine(engine).file(args.out)
    return await run_pipeline(args, engine, (video, audio), cfg, not args.fast, block)


def _inputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The face and speech files: the bundled ones unless --face/--audio name others."""
    if args.face is not None and args.audio is not None:
        return args.face, args.audio
    face, speech = demo_assets()
    return args.face or face, args.audio or speech


def main(args: argparse.Namespace) -> int:
    if args.serve is not None and args.preview:
        raise UserError("--preview: shows a file run's output; with --serve the page shows it, expected one")
    if args.serve is not None:  # the WebRTC page, for people without a camera (realtime/webrtc/sample.py)
        from stablesync.realtime.webrtc.sample import serve_demo

        return serve_demo(args)
    check_preview_options(args)
    session_config(args, realtime=not args.fast)  # --budget-ms and --lookahead-ms first
    face, speech = _inputs(args)
    inputs: dict[str, Path | None] = {"--face": face, "--audio": speech}
    check_output_path(args.out, overwrite=args.overwrite, inputs=inputs)
    check_stats_path(args.stats_json, inputs | {"--out": args.out})
    result = run_async(_demo(args))
    mode = "fast" if args.fast else "paced"
    return report(result, args.stats_json, {"command": "demo", "mode": mode})
