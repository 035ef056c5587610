"""`stablesync average CKPT CKPT [...] --out OUT`: weight averaging of one run's checkpoints.

For example the last five step files of a G_L run, once its learning rate has decayed:
`stablesync average runs/x/checkpoints/step-0000{2200,2400,2600,2800,3000}.safetensors
--out runs/x/avg.safetensors`.
Choose between the average and the last step on the validation split (`stablesync eval --split val`).
"""

from __future__ import annotations

import argparse

from stablesync import checkpoint


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Average the weights of checkpoints of one run into one checkpoint."
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoints (safetensors) of one run, at least two")
    p.add_argument("--out", required=True, help="checkpoint to write (atomically)")
    return p


def main(args: argparse.Namespace) -> int:
    out = checkpoint.average(args.checkpoints, args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints into {out}")
    return 0
