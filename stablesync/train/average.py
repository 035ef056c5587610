"""`stablesync average CKPT CKPT [...] --out OUT`: weight averaging of one run's checkpoints.

For example the last five step files of a G_L run, once its learning rate has decayed:
`stablesync average runs/x/checkpoints/step-0000{2200,2400,2600,2800,3000}.safetensors
--out runs/x/avg.safetensors`.
Choose between the average and the last step on the validation split (`stablesync eval --split val`).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stablesync.errors import UserError


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description="Average the weights of checkpoints of one run into one checkpoint."
    )
    p.add_argument("checkpoints", nargs="+", help="checkpoints (safetensors) of one run, at least two")
    p.add_argument("--out", required=True, help="checkpoint to write (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return p


def _same(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    return a.exists() and b.exists() and os.path.samefile(a, b)


def check_paths(inputs: list[Path], out: Path, overwrite: bool) -> None:
    """Distinct inputs; `out` none of them, and new unless `overwrite`."""
    for i, path in enumerate(inputs):
        twin = next((other for other in inputs[:i] if _same(path, other)), None)
        if twin is not None:
            raise UserError(f"{path}: given twice (also as {twin}); expected distinct checkpoints of one run")
        if _same(path, out):
            raise UserError(f"--out {out}: is also an input checkpoint; expected a new file")
    if out.exists() and not overwrite:
        raise UserError(f"--out {out}: exists; pass --overwrite to replace it")


def main(args: argparse.Namespace) -> int:
    check_paths([Path(p) for p in args.checkpoints], Path(args.out), args.overwrite)
    from stablesync import checkpoint  # torch: only once the arguments are right

    out = checkpoint.average(args.checkpoints, args.out)
    print(f"averaged {len(args.checkpoints)} checkpoints into {out}")
    return 0
