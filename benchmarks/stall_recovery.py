"""Stall recovery of the live path: a paced avatar run (the `stablesync demo` inputs) whose engine
stalls once for `--stall-s` (default 1.5 s, like the machine swapping) after `--stall-at-s`;
reports the share of the frames captured after the stall's end that came out lip-synced, and
how long after the stall's end the first one came.

`python -m stablesync.benchmarks.stall_recovery [--seconds 10] [--stall-at-s 3] [--stall-s 1.5] [--quick]
[--out benchmarks/out/stall_recovery.json]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech, speech_like
from stablesync.export.engine import Engine, FloatArray, ReferenceFeatures
from stablesync.realtime.pipeline.frames import NS_PER_MS, OutputFrame


class StallingEngine:
    """The real engine; the first `generate` at or after `stall_at_ns` also sleeps `stall_s`."""

    def __init__(self, inner: Engine, stall_s: float) -> None:
        self.inner, self.manifest, self.backend = inner, inner.manifest, inner.backend
        self.stall_s = stall_s
        self.stall_at_ns: int | None = None  # set when the run starts
        self.stall_end_ns: int | None = None

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        return self.inner.encode_reference(images)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        out = self.inner.generate(features, frames, mels)
        now = time.monotonic_ns()
        if self.stall_end_ns is None and self.stall_at_ns is not None and now >= self.stall_at_ns:
            time.sleep(self.stall_s)
            self.stall_end_ns = time.monotonic_ns()
        return out


async def run_with_stall(
    weights: Path, face: Path, speech: NDArray[np.float32], seconds: float, stall_at_s: float, stall_s: float
) -> dict[str, Any]:
    from stablesync.realtime.local.runner import RunConfig, Runner
    from stablesync.realtime.local.sources import AudioFileSource, ImageSource, load_image
    from stablesync.realtime.pipeline.loading import open_engine
    from stablesync.realtime.pipeline.session import SessionConfig

    engine = StallingEngine(open_engine(weights, "auto"), stall_s)
    reps = int(np.ceil(seconds * 16_000 / speech.size))
    audio = AudioFileSource(np.tile(speech, reps)[: int(seconds * 16_000)], 16_000)
    video = ImageSource(load_image(face), engine.manifest.fps, duration_s=seconds)
    outputs: list[tuple[int, str]] = []

    def seen(out: OutputFrame) -> None:
        if engine.stall_at_ns is None:  # the first frame out: the run is warm, arm the stall
            engine.stall_at_ns = time.monotonic_ns() + int(stall_at_s * 1000 * NS_PER_MS)
        outputs.append((out.frame.capture_ns, out.mode))

    cfg = RunConfig(session=SessionConfig(budget_ms=250.0), live_status=False, on_output=seen)
    result = await Runner(engine, video, audio, cfg, paced=True).run()  # type: ignore[arg-type]
    end_ns = engine.stall_end_ns
    if end_ns is None:
        raise RuntimeError("the run ended before the stall")
    after = [mode for capture_ns, mode in outputs if capture_ns >= end_ns]
    before = [mode for capture_ns, mode in outputs if capture_ns < end_ns - int(stall_s * 1e9)]
    first = next((c for c, mode in outputs if c >= end_ns and mode == "lipsync"), None)
    counts = result.telemetry.summary()["counts"]
    return {
        "seconds": seconds,
        "stall_s": stall_s,
        "frames_out": len(outputs),
        # the machine keeping up at all: on a loaded one, frames are late before the stall too
        "lipsync_share_before_stall": round(sum(m == "lipsync" for m in before) / max(len(before), 1), 4),
        "frames_after_stall": len(after),
        "lipsync_after_stall": sum(mode == "lipsync" for mode in after),
        "lipsync_share_after_stall": round(sum(m == "lipsync" for m in after) / max(len(after), 1), 4),
        "first_lipsync_after_stall_ms": None if first is None else round((first - end_ns) / NS_PER_MS, 1),
        "late_by_estimate": counts.get("late_by_estimate", 0),
        "late_refused_by_batcher": counts.get("late_refused_by_batcher", 0),
        "inference_past_deadline": counts.get("inference_past_deadline", 0),
        "counts": counts,
        "error": result.error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.stall_recovery", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/stall_recovery.json"))
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--stall-at-s", type=float, default=3.0, help="after the first frame out")
    parser.add_argument("--stall-s", type=float, default=1.5)
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="6 s, the stall after 2 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.stall_at_s = 6.0, 2.0
    face, speech = demo_face_and_speech()
    speech = speech_like(8.0) if speech is None else speech
    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = bench_weights(args.weights, Path(tmp))
        figures = asyncio.run(
            run_with_stall(weights, face, speech, args.seconds, args.stall_at_s, args.stall_s)
        )
    figures["weights"] = kind
    path = write_result(args.out, "stall_recovery", figures)
    synced, after = figures["lipsync_after_stall"], figures["frames_after_stall"]
    share = 100 * figures["lipsync_share_after_stall"]
    print(
        f"after a {args.stall_s:.1f} s stall: {synced}/{after} frames lip-synced ({share:.1f}%), the first"
        f" {figures['first_lipsync_after_stall_ms']} ms after the stall; frames lost to the estimate"
        f" {figures['late_by_estimate']}; before it {100 * figures['lipsync_share_before_stall']:.1f}%"
        f" lip-synced -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
