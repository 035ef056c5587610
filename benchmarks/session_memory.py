"""Memory kept per session by the lip-sync pipeline's per-session parts, without WebRTC.

Opens and closes one part `--cycles` times in one process, feeding a few frames of the demo face
(320 px wide, as `stablesync.benchmarks.webrtc_soak` sends it) each time, and records the RSS after each
close, after `gc.collect()` and the heap trim `serve` does when a session closes
(`stablesync.realtime.webrtc.heap.release_free_memory`). Each part runs in a process of its own:

  threads             a fresh single-thread worker per cycle doing the crop's OpenCV work (control)
  tracker             the face follower's tracker (`open_tracker("auto")`) on a fresh worker thread
  crop-landmarks      the renderer's crop landmark reader on a fresh worker thread
  follower            `FaceFollower` (tracking.py) as a session opens and closes it
  compositor          `Compositor` (the renderer, with its crop landmark reader) likewise
  session             `LipSyncSession` on one shared batcher and the real engine (as `serve`)
  session-echo        the same with an engine that hands the crops back (onnxruntime only
                      encodes the reference)
  session[-echo]-beside   the same next to one long live session fed at 25 fps (the soak's shape)

`python -m stablesync.benchmarks.session_memory --out benchmarks/results/session_memory.json
[--cycles 60] [--frames 5] [--part NAME ...] [--ort-option enable_mem_pattern=0 ...]`
Growth per cycle: the least-squares slope of RSS over the cycles after the first fifth.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import malloc_mb, os_threads, rss_mb, write_result

PARTS = (
    "threads",
    "tracker",
    "crop-landmarks",
    "follower",
    "compositor",
    "session",
    "session-echo",
    "session-beside",
    "session-echo-beside",
)
# onnxruntime SessionOptions that decide what memory the engine keeps between runs
ORT_OPTIONS = ("enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse")
FRAME_WIDTH_PX = 320
FPS = 25
Image = NDArray[np.uint8]
Cycle = Callable[[], Awaitable[None]]


@dataclass
class Inputs:
    frames: list[Image]  # the demo face, FRAME_WIDTH_PX wide
    crops: list[Image]  # its aligned crops at the engine's crop size
    speech: NDArray[np.float32]  # 16 kHz mono
    crop_size: int
    alignment: Any  # the demo face's CropAlignment


def _inputs(frames: int) -> Inputs:
    import cv2

    from stablesync.benchmarks.inputs import demo_face_and_speech, speech_like
    from stablesync.export.manifest import read_manifest
    from stablesync.face import CropAlignment, align_crop, open_tracker
    from stablesync.realtime.pipeline.loading import default_weights_dir

    face, speech = demo_face_and_speech()
    photo = cv2.cvtColor(cv2.imread(str(face)), cv2.COLOR_BGR2RGB)
    h, w = photo.shape[:2]
    size = (FRAME_WIDTH_PX, round(h * FRAME_WIDTH_PX / w) // 2 * 2)
    image: Image = np.asarray(cv2.resize(photo, size), dtype=np.uint8)
    crop_size = read_manifest(default_weights_dir()).image_size
    tracker = open_tracker("auto", max_faces=1, video=False)
    try:
        points = tracker.detect(image)[0].points[:, :2].astype(np.float32)
    finally:
        tracker.close()
    alignment = CropAlignment.from_landmarks(points, crop_size)
    crop = align_crop(image, alignment)
    return Inputs(
        frames=[image.copy() for _ in range(frames)],
        crops=[crop.copy() for _ in range(frames)],
        speech=speech_like(8.0) if speech is None else speech,
        crop_size=crop_size,
        alignment=alignment,
    )


async def _on_fresh_worker(work: Callable[[], None]) -> None:
    """`work` on a fresh single-thread worker (as a session's), shut down (joined) after."""
    loop = asyncio.get_running_loop()
    fresh = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-memory")
    try:
        await loop.run_in_executor(fresh, work)
    finally:
        fresh.shutdown(wait=True)


def _face_cycles(part: str, inputs: Inputs) -> Cycle:
    from stablesync.face import align_crop, open_tracker
    from stablesync.face.crop_landmarks import CropLandmarks
    from stablesync.realtime.pipeline.compositing import Compositor
    from stablesync.realtime.pipeline.frames import VideoFrame
    from stablesync.realtime.pipeline.tracking import FaceFollower, TrackingConfig

    def crops_work() -> None:
        for frame in inputs.frames:
            align_crop(frame, inputs.alignment)

    def tracker_work() -> None:
        tracker = open_tracker("auto", max_faces=3, video=True)
        for frame in inputs.frames:
            tracker.detect(frame)
        tracker.close()

    def landmarks_work() -> None:
        reader = CropLandmarks(inputs.crop_size)
        for crop in inputs.crops:
            reader.read(crop)

    def follower_work() -> None:
        follower = FaceFollower(inputs.crop_size, TrackingConfig(tracker="auto"))
        for i, image in enumerate(inputs.frames):
            follower.track(VideoFrame(image, i * 40_000_000, i * 40_000_000, i))
        follower.close()

    def compositor_work() -> None:
        follower = FaceFollower(inputs.crop_size, TrackingConfig(tracker="auto"))
        compositor = Compositor(inputs.crop_size)
        for i, image in enumerate(inputs.frames):
            track = follower.track(VideoFrame(image, i * 40_000_000, i * 40_000_000, i))
            if track is not None:
                compositor.composite(
                    image, _open_mouth(track.crop), track.points, track.alignment, i * 40_000_000
                )
        follower.close()
        compositor.close()

    works: dict[str, Callable[[], None]] = {
        "threads": crops_work,
        "tracker": tracker_work,
        "crop-landmarks": landmarks_work,
        "follower": follower_work,
        "compositor": compositor_work,
    }
    return lambda: _on_fresh_worker(works[part])


def _open_mouth(crop: NDArray[Any]) -> NDArray[Any]:
    """An (S, S, C) aligned crop with the rows from the lower lip down moved down a little: a
    generated crop whose mouth differs from the frame's, so the renderer warps it."""
    out = crop.copy()
    size = crop.shape[0]
    lips = slice(int(size * 0.68), int(size * 0.95))
    out[lips] = np.roll(crop[lips], max(1, size // 40), axis=0)
    return out


class EchoEngine:
    """The real engine's manifest and reference features; `generate` hands the crops back with the
    lower lip moved down a little (so the renderer warps the mouth as it does a generated one)."""

    def __init__(self, engine: Any) -> None:
        self.manifest = engine.manifest
        self.backend = "echo"
        self._engine = engine

    def encode_reference(self, images: NDArray[np.float32]) -> tuple[NDArray[np.float32], ...]:
        features: tuple[NDArray[np.float32], ...] = self._engine.encode_reference(images)
        return features

    def generate(
        self,
        features: tuple[NDArray[np.float32], ...],
        frames: NDArray[np.float32],
        mels: NDArray[np.float32],
    ) -> NDArray[np.float32]:
        del features, mels
        return np.stack([_open_mouth(f.transpose(1, 2, 0)).transpose(2, 0, 1) for f in frames])


async def _long_session(batcher: Any, inputs: Inputs, stop: asyncio.Event) -> None:
    """A live session fed at FPS until `stop` (as the long call beside the soak's churn)."""
    from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk, VideoFrame
    from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig

    session = LipSyncSession(batcher, SessionConfig(realtime=True, audio_out=False), name="mem-long")
    await session.start()
    step = 16_000 // FPS
    base_ns = session.clock.monotonic_ns()

    async def drain() -> None:
        while (out := await session.next_output()) is not None:
            session.mark_delivered(out)

    drainer = asyncio.create_task(drain())
    try:
        for i in itertools.count():
            if stop.is_set():
                break
            t_ns = base_ns + i * NS_PER_S // FPS
            k = (i * step) % (len(inputs.speech) - step)
            session.offer_audio(AudioChunk(inputs.speech[k : k + step], 16_000, t_ns, t_ns - base_ns))
            await session.submit_video(
                VideoFrame(inputs.frames[i % len(inputs.frames)], t_ns, t_ns - base_ns, i)
            )
            await asyncio.sleep(max(0.0, (t_ns + NS_PER_S // FPS - session.clock.monotonic_ns()) / NS_PER_S))
        await session.end_video()
        await drainer
    finally:
        drainer.cancel()
        await session.close()


@contextlib.contextmanager
def _ort_options(settings: dict[str, bool]) -> Iterator[None]:
    """While open: every onnxruntime `SessionOptions` made gets `settings` (attribute: value) on
    top of what `stablesync.export.backends.ort` sets, to measure what a change of them would keep."""
    import onnxruntime as ort

    make_base = ort.SessionOptions

    def make() -> Any:
        options = make_base()
        for name, value in settings.items():
            setattr(options, name, value)
        return options

    with mock.patch.object(ort, "SessionOptions", make):
        yield


async def _session_cycles(
    echo: bool, inputs: Inputs, counts: dict[str, int], beside: bool, ort_settings: dict[str, bool]
) -> tuple[Cycle, Callable[[], Awaitable[None]]]:
    """One session per cycle on one shared batcher (with `beside`, next to a long live session);
    `counts`: the last cycle's session's telemetry counts. Returns the cycle and what ends it all."""
    from stablesync.realtime.pipeline.batcher import InferenceBatcher
    from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk, VideoFrame
    from stablesync.realtime.pipeline.loading import open_engine
    from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig

    others = {k: v for k, v in ort_settings.items() if k != "enable_cpu_mem_arena"}
    with _ort_options(others):  # the arena as serve opens it (none) unless --ort-option says
        arena = ort_settings.get("enable_cpu_mem_arena", False)
        engine: Any = open_engine(None, "auto", 1, memory_arena=arena)
    batcher = InferenceBatcher(EchoEngine(engine) if echo else engine)
    rate_hz = 16_000
    audio = inputs.speech[rate_hz : rate_hz + int(len(inputs.frames) / FPS * rate_hz) + rate_hz // 2]
    counter = itertools.count()
    stop = asyncio.Event()
    long_call = asyncio.create_task(_long_session(batcher, inputs, stop)) if beside else None

    async def cycle() -> None:
        session = LipSyncSession(batcher, SessionConfig(realtime=False), name=f"mem-{next(counter)}")
        await session.start()
        base_ns = session.clock.monotonic_ns()

        async def feed() -> None:
            await session.submit_audio(AudioChunk(audio, rate_hz, base_ns, 0))
            await session.end_audio()
            for i, image in enumerate(inputs.frames):
                t_ns = base_ns + i * NS_PER_S // FPS
                await session.submit_video(VideoFrame(image, t_ns, t_ns - base_ns, i))
            await session.end_video()

        feeder = asyncio.create_task(feed())
        try:
            while (out := await session.next_output()) is not None:
                session.mark_delivered(out)
            await feeder
        finally:
            feeder.cancel()
            await session.close()
            await asyncio.sleep(0.05)  # the session's workers shut down without waiting
        counts.clear()  # the last session's, without its notes
        counts.update((k, v) for k, v in session.telemetry.counts.items() if not k.startswith("event:"))

    async def end() -> None:
        stop.set()
        if long_call is not None:
            await long_call
        await batcher.close()

    return cycle, end


def _measure(part: str, cycles: int, frames: int, ort_settings: dict[str, bool]) -> dict[str, Any]:
    from stablesync.realtime.webrtc.heap import release_free_memory

    inputs = _inputs(frames)

    def settle() -> float:
        gc.collect()
        release_free_memory()
        return round(rss_mb(), 2)

    async def run() -> dict[str, Any]:
        closing: Callable[[], Awaitable[None]] | None = None
        counts: dict[str, int] = {}
        if part.startswith("session"):
            beside = part.endswith("-beside")
            cycle, closing = await _session_cycles(
                part.startswith("session-echo"), inputs, counts, beside, ort_settings
            )
        else:
            cycle = _face_cycles(part, inputs)
        before = settle()
        rss: list[float] = []
        threads_after: list[int] = []
        by_kind = {"before": malloc_mb()}
        for i in range(cycles):
            await cycle()
            rss.append(settle())
            threads_after.append(os_threads())
            if i + 1 in (1, max(1, cycles // 5), cycles):
                by_kind[f"after_cycle_{i + 1}"] = malloc_mb()
        threads = threading.active_count()
        if closing is not None:
            await closing()
        return {
            "rss_before_mb": before,
            "rss_after_cycle_mb": rss,
            "malloc_mb": by_kind,
            "python_threads_at_end": threads,
            "os_threads_after_cycle": threads_after,
            "last_session_counts": counts,
        }

    result = asyncio.run(run())
    rss = result["rss_after_cycle_mb"]
    skip = max(1, cycles // 5)
    fit = np.polyfit(np.arange(skip, cycles), np.asarray(rss[skip:]), 1) if cycles - skip >= 3 else None
    result.update(
        part=part,
        cycles=cycles,
        frames_per_cycle=frames,
        first_cycle_step_mb=round(rss[0] - result["rss_before_mb"], 2),
        total_growth_mb=round(rss[-1] - result["rss_before_mb"], 2),
        growth_per_cycle_mb=None if fit is None else round(float(fit[0]), 4),
    )
    return result


def _parse_ort_options(given: list[str]) -> dict[str, bool] | None:
    settings: dict[str, bool] = {}
    for item in given:
        name, _, value = item.partition("=")
        if name not in ORT_OPTIONS or value not in ("0", "1"):
            print(
                f"--ort-option {item}: expected NAME=0 or NAME=1, NAME one of {', '.join(ORT_OPTIONS)}",
                file=sys.stderr,
            )
            return None
        settings[name] = value == "1"
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.session_memory", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/session_memory.json"))
    parser.add_argument("--cycles", type=int, default=60)
    parser.add_argument("--frames", type=int, default=5, help="frames fed per cycle")
    parser.add_argument("--part", action="append", choices=PARTS, help="repeatable; default: all")
    parser.add_argument(
        "--ort-option",
        action="append",
        default=[],
        metavar="NAME=0|1",
        help=f"onnxruntime session option for the engine ({', '.join(ORT_OPTIONS)}); repeatable",
    )
    parser.add_argument("--one", choices=PARTS, help=argparse.SUPPRESS)  # child: one part, JSON to stdout
    args = parser.parse_args(argv)
    if args.cycles < 1 or args.frames < 1:
        print(f"--cycles {args.cycles} --frames {args.frames}: expected positive counts", file=sys.stderr)
        return 2
    ort_settings = _parse_ort_options(args.ort_option)
    if ort_settings is None:
        return 2
    if args.one:
        print(json.dumps(_measure(args.one, args.cycles, args.frames, ort_settings)))
        return 0
    parts: dict[str, Any] = {}
    for part in args.part or PARTS:
        cmd = [sys.executable, "-m", "stablesync.benchmarks.session_memory", "--one", part]
        cmd += ["--cycles", str(args.cycles), "--frames", str(args.frames)]
        cmd += [f"--ort-option={o}" for o in args.ort_option]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            parts[part] = {"error": done.stderr.strip().splitlines()[-1:]}
        else:
            parts[part] = json.loads(done.stdout.strip().splitlines()[-1])
        row = parts[part]
        step, slope = row.get("first_cycle_step_mb"), row.get("growth_per_cycle_mb")
        print(
            f"{part:26s} before {row.get('rss_before_mb')} MB, first cycle +{step} MB,"
            f" then {slope} MB/cycle, total +{row.get('total_growth_mb')} MB",
            flush=True,
        )
    write_result(args.out, "session_memory", {"ort_options": ort_settings, "parts": parts})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
