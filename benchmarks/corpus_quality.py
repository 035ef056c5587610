"""Quality of the synthetic corpus: lips vs speech envelope, and mediapipe detection rate.

    python -m stablesync.benchmarks.corpus_quality --clips 20 --seconds 4 --out runs/bench/corpus_quality.json

Generates a corpus (or reuses --corpus DIR), then reports the mean/min correlation of
`mouth_open` with the smoothed speech RMS envelope (target >= 0.5 on average), the fraction of
frames in which `stablesync.face.FaceMeshTracker` finds the face (target >= 0.99), and the
correlation of the tracker's measured mouth opening with `mouth_open` (the warp really moves
the lips the tracker sees).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from stablesync.benchmarks.common import write_result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=None, help="an existing corpus instead of a new one")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/corpus_quality.json"))
    parser.add_argument("--quick", action="store_true", help="a smaller run for the quick suite")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips = min(args.clips, 4)

    from stablesync.data.quality import detection_rate, envelope_correlation
    from stablesync.data.synth import SynthConfig, synthesise_corpus
    from stablesync.face import FaceMeshTracker

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp) / "corpus"
        if args.corpus is None:
            synthesise_corpus(
                SynthConfig(corpus, args.clips, args.seconds, args.seed, args.workers, progress=False)
            )
        metas = sorted(corpus.glob("clip*.json"))
        corr = [envelope_correlation(m) for m in metas]
        found = total = 0
        tracked_corr = []
        for meta in metas:
            with FaceMeshTracker(video=True) as tracker:
                f, t, c = detection_rate(meta.with_suffix(".mp4"), tracker)
            found, total = found + f, total + t
            tracked_corr.append(c)
        figures = {
            "clips": len(metas),
            "seconds_per_clip": args.seconds,
            "mouth_envelope_correlation_mean": float(np.mean(corr)),
            "mouth_envelope_correlation_min": float(np.min(corr)),
            "detection_rate": found / max(total, 1),
            "frames": total,
            "tracked_mouth_opening_correlation_mean": float(np.mean(tracked_corr)),
            "samples": {
                "mouth_envelope_correlation": corr,
                "tracked_mouth_opening_correlation": tracked_corr,
            },
        }
    path = write_result(args.out, "corpus_quality", figures)
    print(json.dumps(figures, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
