"""CPU per frame of an export's fp32 and int8 frame graphs (onnxruntime CPU), interleaved rounds.

`python -m stablesync.benchmarks.int8_cpu DIR --data PREPARED [--threads 1] [--batch 1] [--rounds 20] --out
F.json`

Inputs: `--batch` items of the prepared dataset's test split (one reference per item). Each
round runs 20 timed calls of frame.onnx, then of frame_int8.onnx, after 2 warm-up calls each;
recorded per frame: process CPU ms (every onnxruntime thread; sessions do not spin, so idle
threads cost nothing) and wall ms, median and minimum over rounds, with the 1-minute load
average before and after each round. Wall figures on a shared machine say little; CPU ones less
so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Any

from stablesync.benchmarks.common import write_result

CALLS = 20


def measure(directory: Path, data: Path, threads: int, batch: int, rounds: int) -> dict[str, Any]:
    from stablesync.export.heldout import open_graph
    from stablesync.export.manifest import read_manifest
    from stablesync.export.quantize import split_inputs

    samples = split_inputs(data, "test", batch, read_manifest(directory).lookahead_ms, seed=3)
    engines = {g: open_graph(directory, g, threads) for g in ("frame", "frame_int8")}
    feats = {g: e.encode_reference(samples.images) for g, e in engines.items()}
    cpu_ms: dict[str, list[float]] = {g: [] for g in engines}
    wall_ms: dict[str, list[float]] = {g: [] for g in engines}
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for graph, engine in engines.items():
            for _ in range(2):
                engine.generate(feats[graph], samples.frames, samples.mels)
            cpu0_s, wall0_s = time.process_time(), time.perf_counter()
            for _ in range(CALLS):
                engine.generate(feats[graph], samples.frames, samples.mels)
            cpu_ms[graph].append((time.process_time() - cpu0_s) / CALLS / batch * 1e3)
            wall_ms[graph].append((time.perf_counter() - wall0_s) / CALLS / batch * 1e3)
        loads.append(os.getloadavg()[0])

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": statistics.median(values), "min": min(values)}

    return {
        "export": str(directory),
        "threads": threads,
        "batch": batch,
        "rounds": rounds,
        "load_1m": loads,
        "cpu_ms_per_frame": {g: stats(v) for g, v in cpu_ms.items()},
        "wall_ms_per_frame": {g: stats(v) for g, v in wall_ms.items()},
        "cpu_speedup": statistics.median(cpu_ms["frame"]) / statistics.median(cpu_ms["frame_int8"]),
        "samples_cpu_ms": cpu_ms,
        "samples_wall_ms": wall_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.int8_cpu", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directory", type=Path, help="an export directory listing frame_int8")
    parser.add_argument("--data", type=Path, required=True, help="a prepared dataset (test split used)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    figures = measure(args.directory, args.data, args.threads, args.batch, args.rounds)
    write_result(args.out, "int8_cpu", figures)
    cpu = figures["cpu_ms_per_frame"]
    print(
        f"CPU ms per frame (median, {args.threads} thread(s), batch {args.batch}):"
        f" fp32 {cpu['frame']['median']:.2f}, int8 {cpu['frame_int8']['median']:.2f}"
        f" (x{figures['cpu_speedup']:.2f}); load {min(figures['load_1m']):.1f}-{max(figures['load_1m']):.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
