"""`stablesync demo`: the bundled face and speech through the same real-time pipeline as `run`,
paced at real time (or `--fast`), written to an mp4, with the latency summary."""

from __future__ import annotations

import argparse
from pathlib import Path

import stablesync
from realtime.cli_common import add_engine_options, check_output_path, report, run_async, session_config
from realtime.engines import open_engine
from realtime.runner import RunConfig, Runner, RunResult
from realtime.sources import AudioFileSource, ImageSource, load_audio_file, load_image
from stablesync.errors import UserError


def demo_assets() -> tuple[Path, Path]:
    root = Path(stablesync.__file__).resolve().parent / "assets" / "demo"
    face, speech = root / "face.png", root / "speech.wav"
    for path in (face, speech):
        if not path.is_file():
            raise UserError(f"demo asset {path} is missing; reinstall stablesync (`make demo` installs it)")
    return face, speech


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
    face_path, speech_path = (
        demo_assets() if args.face is None or args.audio is None else (args.face, args.audio)
    )
    face_path = args.face or face_path
    speech_path = args.audio or speech_path
    image = load_image(face_path)
    engine = open_engine(args.weights, args.backend, args.threads)
    speech = load_audio_file(speech_path, engine.manifest.mel.sample_rate_hz)
    audio = AudioFileSource(speech, engine.manifest.mel.sample_rate_hz)
    fps = engine.manifest.fps
    video = ImageSource(image, fps=fps, duration_s=audio.duration_s)
    cfg = RunConfig(
        session=session_config(args, realtime=not args.fast),
        out_path=args.out,
        fps=fps,
        live_status=not args.quiet,
    )
    return await Runner(engine, video, audio, cfg, paced=not args.fast).run()


def main(args: argparse.Namespace) -> int:
    if args.serve is not None:  # the WebRTC page, for people without a camera (realtime/webrtc/sample.py)
        from realtime.webrtc.sample import serve_demo

        return serve_demo(args)
    check_output_path(args.out)
    result = run_async(_demo(args))
    mode = "fast" if args.fast else "paced"
    return report(result, args.stats_json, {"command": "demo", "mode": mode})
