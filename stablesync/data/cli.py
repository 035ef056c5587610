"""`stablesync data synth ...` and `stablesync data prepare ...`."""

from __future__ import annotations

import argparse
from pathlib import Path


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="make the synthetic corpus or prepare a real dataset"
    )
    sub = parser.add_subparsers(dest="action", required=True, metavar="{synth,prepare}")
    synth = sub.add_parser(
        "synth", prog=f"{prog} synth", help="generate a synthetic talking-face corpus (espeak-ng speech)"
    )
    synth.add_argument("--out", type=Path, required=True, help="corpus directory (created; resumes)")
    synth.add_argument("--clips", type=int, required=True, help="number of clips")
    synth.add_argument("--seconds", type=float, default=4.0, help="length of each clip (default 4)")
    synth.add_argument("--seed", type=int, default=0, help="corpus seed: same seed, same corpus")
    synth.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    synth.add_argument("--size", type=int, default=256, help="video frame size in pixels (default 256)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")
    prep = sub.add_parser(
        "prepare", prog=f"{prog} prepare", help="turn talking videos into the training layout"
    )
    prep.add_argument("src", type=Path, help="a folder of videos, an LRS2/LRS3-style tree, or a synth corpus")
    prep.add_argument("dst", type=Path, help="prepared dataset directory (created; resumes)")
    prep.add_argument("--layout", choices=("folder", "lrs2"), default="folder", help="how SRC is organised")
    prep.add_argument("--size", type=int, default=96, help="face crop size in pixels (default 96)")
    prep.add_argument("--workers", type=int, default=2, help="parallel processes (default 2)")
    prep.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(args: argparse.Namespace) -> int:
    if args.action == "synth":
        from stablesync.data.clip import RenderConfig
        from stablesync.data.synth import SynthConfig, synthesise_corpus

        if not 64 <= args.size <= 1024:
            from stablesync.errors import UserError

            raise UserError(f"--size {args.size}: expected a frame size between 64 and 1024 pixels")
        cfg = SynthConfig(
            out_dir=args.out,
            clips=args.clips,
            seconds=args.seconds,
            seed=args.seed,
            workers=args.workers,
            render=RenderConfig(size=args.size),
            progress=not args.quiet,
        )
        manifest = synthesise_corpus(cfg)
        print(f"corpus: {manifest}")
        return 0
    from stablesync.data.prepare import PrepareConfig, prepare_dataset

    report = prepare_dataset(
        PrepareConfig(
            src=args.src,
            dst=args.dst,
            layout=args.layout,
            size=args.size,
            workers=args.workers,
            progress=not args.quiet,
        )
    )
    print(
        f"prepared {len(report.prepared)} clips into {args.dst}; skipped {len(report.skipped)}"
        + (f" (see {args.dst / 'report.json'})" if report.skipped else "")
    )
    return 1 if report.skipped else 0
