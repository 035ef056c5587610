"""`stablesync demo --serve`: the bundled face and speech as a WebM the page plays in place of a
camera (`/?source=sample`), through the same server, for people without a camera."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import tempfile
from pathlib import Path

import av
import numpy as np

from stablesync.realtime.pipeline.frames import AudioSamples, RgbImage
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.server import RunningServer, serve_until_signal

SAMPLE_FPS = 25
SAMPLE_RATE_HZ = 48_000


def write_sample_webm(image: RgbImage, speech: AudioSamples, speech_rate_hz: int, out: Path) -> Path:
    """The still `image` for the length of `speech`, as VP8 + Opus WebM (what any browser plays)."""
    from stablesync.audio import resample

    audio = np.clip(resample(speech, speech_rate_hz, SAMPLE_RATE_HZ), -1.0, 1.0)
    n_frames = max(1, round(len(audio) / SAMPLE_RATE_HZ * SAMPLE_FPS))
    tmp = out.with_name(out.name + ".partial")
    with av.open(str(tmp), "w", format="webm") as container:
        video = container.add_stream("libvpx", rate=SAMPLE_FPS)
        video.width, video.height, video.pix_fmt = image.shape[1], image.shape[0], "yuv420p"
        video.bit_rate = 1_000_000
        video.options = {"deadline": "realtime", "cpu-used": "8"}  # libvpx's default is minutes
        sound = container.add_stream("libopus", rate=SAMPLE_RATE_HZ)
        sound.layout = "mono"
        picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for i in range(n_frames):
            picture.pts = i
            container.mux(video.encode(picture))
        container.mux(video.encode())
        pcm = (audio * 32767).astype(np.int16)
        step = 960
        for start in range(0, len(pcm), step):
            chunk = pcm[start : start + step]
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE_HZ, start
            frame.time_base = fractions.Fraction(1, SAMPLE_RATE_HZ)
            container.mux(sound.encode(frame))
        container.mux(sound.encode())
    tmp.replace(out)
    return out


def serve_demo(args: argparse.Namespace) -> int:
    """Serves the page with the demo sample as its source until Ctrl-C/SIGTERM."""
    from stablesync.bundled import demo_assets
    from stablesync.realtime.cli.serve import open_pipelines
    from stablesync.realtime.local.sources import load_audio_file, load_image

    face, speech = (args.face, args.audio) if args.face and args.audio else demo_assets()
    face, speech = args.face or face, args.audio or speech
    image, samples = load_image(face), load_audio_file(speech, 16_000)
    with tempfile.TemporaryDirectory(prefix="stablesync-demo-") as tmp:
        sample = write_sample_webm(image, samples, 16_000, Path(tmp) / "sample.webm")
        config = ServeConfig(port=args.serve, sample_path=sample)
        pipelines = open_pipelines(args)

        def ready(server: RunningServer) -> None:
            print(f"stablesync demo: open {server.url}?source=sample ({pipelines.backend})", flush=True)

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve_until_signal(config, pipelines, ready))
    return 0
