"""`stablesync run`: live lip-sync. Microphone (or an audio file) + webcam (or a photo, or a
looping video file) in; lip-synced video out to a virtual camera and/or an mp4, and the audio,
delayed to match, to a virtual microphone."""

from __future__ import annotations

import argparse
from pathlib import Path

from stablesync.errors import UserError
from stablesync.export.engine import Engine
from stablesync.export.manifest import read_manifest
from stablesync.realtime.cli.common import (
    add_engine_options,
    add_preview_options,
    check_face_photo,
    check_output_path,
    check_positive,
    check_preview_options,
    check_stats_path,
    report,
    run_async,
    run_pipeline,
    session_config,
)
from stablesync.realtime.cli.startup import StartUpBlock
from stablesync.realtime.local.devices import resolve_camera, resolve_input_device
from stablesync.realtime.local.runner import (
    AudioSource,
    RunConfig,
    RunResult,
    VideoSource,
    close_sources,
    open_sources,
)
from stablesync.realtime.local.sinks import VirtualCameraConfig
from stablesync.realtime.local.sinks.preview import no_display_reason
from stablesync.realtime.local.sinks.virtual_mic import VirtualMicConfig
from stablesync.realtime.local.sources import (
    AudioFileSource,
    CameraSource,
    ImageSource,
    MicSource,
    VideoFileSource,
    load_audio_file,
    load_captured_audio,
    load_image,
)
from stablesync.realtime.pipeline.loading import open_engine, resolve_weights


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    video = parser.add_mutually_exclusive_group()
    video.add_argument(
        "--camera",
        default=None,
        help="webcam: index (default 0), part of its name (`stablesync devices`), or a path/URL OpenCV opens",
    )
    video.add_argument(
        "--face", type=Path, default=None, help="avatar mode: this photo is the face, no camera"
    )
    video.add_argument("--video", type=Path, default=None, help="a video file, looped, instead of a camera")
    audio = parser.add_mutually_exclusive_group()
    audio.add_argument(
        "--mic", default=None, help="microphone: index, part of its name, or a PulseAudio source"
    )
    audio.add_argument("--audio", type=Path, default=None, help="an audio file instead of a microphone")
    parser.add_argument("--virtual-camera", action="store_true", help="send the video to a virtual camera")
    parser.add_argument("--camera-device", default=None, help="virtual camera device (e.g. /dev/video10)")
    parser.add_argument(
        "--output-size",
        default="1280x720",
        help="virtual camera size WxH (default 1280x720; a frame of another shape is fitted in), or 'frame'",
    )
    parser.add_argument("--camera-size", default="640x480", help="webcam capture size WxH (default 640x480)")
    parser.add_argument(
        "--virtual-mic", action="store_true", help="play the delayed audio to a virtual microphone"
    )
    parser.add_argument(
        "--mic-output",
        default=None,
        help="output device of --virtual-mic (default: create `stablesync` on Linux)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write an mp4")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of the camera/photo (default 25)")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--fast", action="store_true", help="file inputs only: as fast as possible, no deadlines"
    )
    add_engine_options(parser)
    add_preview_options(parser)
    return parser


def _sources(args: argparse.Namespace, sample_rate_hz: int) -> tuple[VideoSource, AudioSource, bool]:
    live = args.audio is None or (args.face is None and args.video is None)
    if args.fast and live:
        raise UserError("--fast: needs file inputs (--audio with --face or --video), not live devices")
    audio: AudioSource
    if args.audio is not None:
        samples = load_audio_file(args.audio, sample_rate_hz)
        file_audio = AudioFileSource(samples, sample_rate_hz, captured=load_captured_audio(args.audio))
        audio = file_audio
        duration = file_audio.duration_s
    else:
        audio = MicSource(resolve_input_device(args.mic), sample_rate_hz)
        duration = None
    video: VideoSource
    if args.face is not None:
        video = ImageSource(load_image(args.face), fps=args.fps, duration_s=duration)
    elif args.video is not None:
        video = VideoFileSource(args.video, duration_s=duration)
    else:
        width, height = parse_size(args.camera_size, "--camera-size")
        video = CameraSource(resolve_camera(args.camera), width=width, height=height, fps=args.fps)
    return video, audio, not args.fast


def _inputs(args: argparse.Namespace) -> dict[str, Path | None]:
    camera = args.camera
    camera_path = None if camera is None or str(camera).isdigit() else Path(camera)
    return {"--face": args.face, "--video": args.video, "--audio": args.audio, "--camera": camera_path}


async def _run(args: argparse.Namespace) -> RunResult:
    manifest = read_manifest(resolve_weights(args.weights))
    video, audio, paced = _sources(args, manifest.mel.sample_rate_hz)
    if isinstance(video, ImageSource) and args.face is not None:
        check_face_photo(args.face, video.image, manifest.image_size)
    try:
        await open_sources(video, audio)  # every device and input before the model and any file
        engine = open_engine(args.weights, args.backend, args.threads)
        create_pulse = args.virtual_mic and args.mic_output is None and _linux()
        cfg = RunConfig(
            session=session_config(args, realtime=paced),
            out_path=args.out,
            fps=args.fps,
            virtual_camera=VirtualCameraConfig(
                fps=args.fps,
                device=args.camera_device,
                size=None if args.output_size == "frame" else parse_size(args.output_size, "--output-size"),
            )
            if args.virtual_camera
            else None,
            virtual_mic=VirtualMicConfig(device=args.mic_output) if args.virtual_mic else None,
            create_pulse_mic=create_pulse,
            live_status=not args.quiet,
            max_seconds=args.seconds,
        )
        block = start_up_block(args, video, audio, engine)
        return await run_pipeline(args, engine, (video, audio), cfg, paced, block)
    finally:
        await close_sources(video, audio)


def parse_size(text: str, flag: str) -> tuple[int, int]:
    """'WxH' -> (W, H), both even and within 16..7680; anything else is a one-line error."""
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        w, h = int(parts[0]), int(parts[1])
        if 16 <= w <= 7680 and 16 <= h <= 7680 and w % 2 == 0 and h % 2 == 0:
            return w, h
    raise UserError(f"{flag} {text}: expected WIDTHxHEIGHT, even numbers from 16 to 7680 (e.g. 1280x720)")


def start_up_block(
    args: argparse.Namespace, video: VideoSource, audio: AudioSource, engine: Engine
) -> StartUpBlock:
    """What this run opened and where its output goes, one line each."""
    block = (
        StartUpBlock().video(video, args.face).audio(audio, args.mic if args.audio is None else args.audio)
    )
    block.engine(engine).file(args.out)
    if args.virtual_camera:
        where = args.camera_device or "the first v4l2loopback device / OBS virtual camera"
        block.add("camera out", f"{where}: pick it as the camera in the call app")
    if args.virtual_mic:
        block.add(
            "mic out",
            "Linux: pick 'stablesync' (or the name printed next) as the microphone in the call app"
            if args.mic_output is None
            else f"{args.mic_output}: pick its input side as the microphone in the call app",
        )
    return block.pause_signal()


def _linux() -> bool:
    import platform

    return platform.system() == "Linux"


def main(args: argparse.Namespace) -> int:
    if not (args.out or args.virtual_camera or (args.preview and no_display_reason() is None)):
        reason = f" (--preview: {no_display_reason()})" if args.preview else ""
        raise UserError(f"nothing to output to{reason}: pass --virtual-camera, --out FILE.mp4 or --preview")
    check_preview_options(args)
    check_positive(args.fps, "--fps", "frames per second", most=240.0)
    check_positive(args.seconds, "--seconds", "seconds")
    parse_size(args.camera_size, "--camera-size")
    if args.output_size != "frame":
        parse_size(args.output_size, "--output-size")
    session_config(args, realtime=True)  # --budget-ms and --lookahead-ms, before anything opens
    inputs = _inputs(args)
    check_output_path(args.out, overwrite=args.overwrite, inputs=inputs)
    check_stats_path(args.stats_json, inputs | {"--out": args.out})
    result = run_async(_run(args))
    return report(result, args.stats_json, {"command": "run", "budget_ms": args.budget_ms})
