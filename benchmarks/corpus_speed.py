"""Synthetic corpus generation speed: minutes of corpus per minute of wall time.

    python -m benchmarks.corpus_speed --minutes 10 --workers 2 --out runs/bench/corpus_speed.json

Target (issue 3): 10 minutes of corpus (150 clips of 4 s at 256x256, 25 fps) in at most
5 minutes of wall time on 2 cores. `--minutes 1` gives a quick estimate of the same ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import write_result


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
        args.minutes = min(args.minutes, 1.0)

    from stablesync.data.synth import SynthConfig, synthesise_corpus

    clips = max(1, round(args.minutes * 60 / args.seconds))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        synthesise_corpus(
            SynthConfig(Path(tmp) / "corpus", clips, args.seconds, args.seed, args.workers, progress=False)
        )
        wall_s = time.perf_counter() - start
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
        "disk_mb": size_mb,
    }
    path = write_result(args.out, "corpus_speed", figures)
    print(json.dumps(figures, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
