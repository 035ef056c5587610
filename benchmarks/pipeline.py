"""The real-time pipeline on this machine: a paced run (default 60 s) of the default preset in
avatar mode (a face photo + speech, the `stablesync demo` path), reporting sustained fps, late
and dropped frames, glass-to-glass latency p50/p95/p99, per-stage times, and the CPU the whole
process used (`cores`: CPU seconds of every thread over wall seconds; `cpu_ms_per_frame`).

`python -m stablesync.benchmarks.pipeline --out benchmarks/out/pipeline.json [--seconds 60] [--quick]`
Weights: `--weights DIR`, else the bundled trained cpu-rt export, else a random-init cpu-rt
export made for the run (same graphs and speed; recorded in the JSON as "weights").
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.benchmarks.common import write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech, speech_like


async def run_paced(
    weights: Path,
    speech: np.ndarray,
    seconds: float,
    budget_ms: float,
    video: Callable[[float], Any] | None = None,
    face: Path | None = None,
    during: Callable[[], Awaitable[Any]] | None = None,
) -> dict[str, Any]:
    """One paced run of `seconds`: speech looped into the file input, and `video(fps)` (a video
    source) or the photo `face` (avatar mode). `during()` runs alongside (e.g. a memory sampler)
    and is cancelled at the end. Returns the telemetry figures."""
    from stablesync.realtime.local.runner import RunConfig, Runner
    from stablesync.realtime.local.sources import AudioFileSource, ImageSource, load_image
    from stablesync.realtime.pipeline.loading import open_engine
    from stablesync.realtime.pipeline.session import SessionConfig

    engine = open_engine(weights, "auto")
    reps = int(np.ceil(seconds * 16_000 / speech.size))
    audio = AudioFileSource(np.tile(speech, reps)[: int(seconds * 16_000)], 16_000)
    fps = engine.manifest.fps
    if video is not None:
        source = video(fps)
    else:
        assert face is not None
        source = ImageSource(load_image(face), fps, duration_s=seconds)
    cfg = RunConfig(session=SessionConfig(budget_ms=budget_ms), live_status=False)
    side = asyncio.get_running_loop().create_task(during()) if during is not None else None
    cpu_start_s, wall_start_s = time.process_time(), time.monotonic()
    try:
        result = await Runner(engine, source, audio, cfg, paced=True).run()
        cpu_s, wall_s = time.process_time() - cpu_start_s, time.monotonic() - wall_start_s
    finally:
        if side is not None:
            side.cancel()
            await asyncio.gather(side, return_exceptions=True)
    s = result.telemetry.summary()
    c = s["counts"]
    return {
        "backend": engine.backend,
        "preset": engine.manifest.preset,
        "seconds": seconds,
        "budget_ms": budget_ms,
        "frames_in": c.get("frames_in", 0),
        "frames_out": c.get("frames_out", 0),
        "sustained_fps": s["sustained_fps"],
        "lipsync_frames": c.get("mode_lipsync", 0),
        "late_frames": c.get("mode_late", 0),
        "dropped_frames": c.get("frames_dropped", 0),
        "over_budget_frames": c.get("over_budget", 0),
        "glass_to_glass_ms": s["glass_to_glass_ms"],
        "stages_ms": {k: s[k] for k in ("track_ms", "wait_audio_ms", "infer_ms", "composite_ms")},
        "batches": result.details.get("batches"),
        "cores": round(cpu_s / wall_s, 3),
        "cpu_ms_per_frame": round(1000.0 * cpu_s / max(1, c.get("frames_out", 0)), 2),
        "error": result.error,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.pipeline", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/pipeline.json"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="8 s instead of 60")
    parser.add_argument("--budget-ms", type=float, default=250.0)
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    seconds = 8.0 if args.quick else args.seconds
    face, speech = demo_face_and_speech()
    speech = speech_like(8.0) if speech is None else speech
    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = bench_weights(args.weights, Path(tmp))
        figures = asyncio.run(run_paced(weights, speech, seconds, args.budget_ms, face=face))
    figures["weights"] = kind
    path = write_result(args.out, "pipeline", figures)
    g = figures["glass_to_glass_ms"]
    print(
        f"{figures['sustained_fps']:.1f} fps sustained over {seconds:.0f} s; late {figures['late_frames']},"
        f" dropped {figures['dropped_frames']}; glass-to-glass p50 {g.get('p50')} p95 {g.get('p95')}"
        f" p99 {g.get('p99')} ms; {figures['cores']} cores -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
