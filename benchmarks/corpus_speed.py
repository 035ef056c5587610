"""Synthetic corpus generation speed: minutes of corpus per minute of wall time.

    python -m stablesync.benchmarks.corpus_speed --minutes 10 --workers 2 --out runs/bench/corpus_speed.json

Target (issue 3): 10 minutes of corpus (150 clips of 4 s at 256x256, 25 fps) in at most
5 minutes of wall time on 2 cores. `--minutes 1` gives a quick estimate of the same ratio.
Besides the wall time it reports the CPU time of the generation and the wall time that CPU
time means on `--workers` idle cores: on a machine shared with other jobs the wall time
measures the others' load as much as the generator.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from stablesync.benchmarks.common import write_result


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (the pool's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="corpus length to generate")
    parser.add_argument("--seconds", type=float, default=4.0, help="clip length")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/corpus_speed.json"))
    parser.add_argument("--quick", action="store_true", help="a smaller run for the quick suite")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = min(args.minutes, 0.5)

    from stablesync.data.synth import SynthConfig, synthesise_corpus

    clips = max(1, round(args.minutes * 60 / args.seconds))
    with tempfile.TemporaryDirectory() as tmp:
        cpu_before = _cpu_s()
        start = time.perf_counter()
        synthesise_corpus(
            SynthConfig(Path(tmp) / "corpus", clips, args.seconds, args.seed, args.workers, progress=False)
        )
        wall_s = time.perf_counter() - start
        cpu_s = _cpu_s() - cpu_before
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "corpus").iterdir()) / 1e6
    corpus_s = clips * args.seconds
    figures = {
        "clips": clips,
        "corpus_s": corpus_s,
        "wall_s": wall_s,
        "workers": args.workers,
        "cores": os.cpu_count(),
        "corpus_s_per_wall_s": corpus_s / wall_s,
        "wall_s_per_10_min_corpus": wall_s * 600.0 / corpus_s,
        "target_wall_s_per_10_min_corpus": 300.0,
        "frames_per_s": corpus_s * 25.0 / wall_s,
        "cpu_s": cpu_s,
        "load_average_1min": os.getloadavg()[0],
        # what the wall time would be with `workers` idle cores: independent of other jobs' load
        "cpu_bound_wall_s_per_10_min_corpus": cpu_s / args.workers * 600.0 / corpus_s,
        "disk_mb": size_mb,
    }
    path = write_result(args.out, "corpus_speed", figures)
    print(json.dumps(figures, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
