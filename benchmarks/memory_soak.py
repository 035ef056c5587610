"""Peak resident memory of the filter over a long paced run (default 10 minutes), sampled every
second, to show that it does not grow: start, peak and end RSS and the growth rate over the
second half of the run (MB per minute, least squares).

`python -m stablesync.benchmarks.memory_soak --out benchmarks/out/memory_soak.json [--minutes 10] [--quick]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stablesync.benchmarks.common import rss_mb, write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech, speech_like
from stablesync.benchmarks.pipeline import run_paced


class Sampler:
    def __init__(self, period_s: float = 1.0) -> None:
        self.period_s = period_s
        self.t_s: list[float] = []
        self.rss_mb: list[float] = []

    async def run(self) -> None:
        start = time.monotonic()
        while True:
            self.t_s.append(time.monotonic() - start)
            self.rss_mb.append(rss_mb())
            await asyncio.sleep(self.period_s)


def growth_mb_per_min(t_s: list[float], rss: list[float]) -> float | None:
    half = len(t_s) // 2
    if len(t_s) - half < 3:
        return None
    slope_per_s = float(np.polyfit(np.asarray(t_s[half:]), np.asarray(rss[half:]), 1)[0])
    return slope_per_s * 60.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.memory_soak", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/memory_soak.json"))
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="15 s instead of 10 minutes")
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    seconds = 15.0 if args.quick else args.minutes * 60.0
    face, speech = demo_face_and_speech()
    speech = speech_like(8.0) if speech is None else speech
    sampler = Sampler()
    before_mb = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = bench_weights(args.weights, Path(tmp))
        run = asyncio.run(run_paced(weights, speech, seconds, 250.0, face=face, during=sampler.run))
    figures = {
        "weights": kind,
        "seconds": seconds,
        "rss_before_load_mb": before_mb,
        "rss_start_mb": sampler.rss_mb[0] if sampler.rss_mb else None,
        "rss_peak_mb": max(sampler.rss_mb, default=None),
        "rss_end_mb": sampler.rss_mb[-1] if sampler.rss_mb else None,
        "growth_second_half_mb_per_min": growth_mb_per_min(sampler.t_s, sampler.rss_mb),
        "sustained_fps": run["sustained_fps"],
        "glass_to_glass_ms": run["glass_to_glass_ms"],
        "samples": {"rss_mb": sampler.rss_mb},
        "samples_unit": "MB",
    }
    path = write_result(args.out, "memory_soak", figures)
    print(
        f"RSS start {figures['rss_start_mb']:.0f} MB, peak {figures['rss_peak_mb']:.0f} MB, end"
        f" {figures['rss_end_mb']:.0f} MB over {seconds:.0f} s; growth in the second half"
        f" {figures['growth_second_half_mb_per_min']} MB/min -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
