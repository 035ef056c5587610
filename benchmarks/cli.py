"""`stablesync bench [--quick] [--out DIR] [--only NAME ...]`: the whole benchmark suite.

Every module `benchmarks/<name>.py` that defines `main(argv) -> int` and accepts
`--out FILE.json [--quick]` is a benchmark. Each runs in its own process (so torch-free
benchmarks stay torch-free and memory figures are not shared), with its output streamed.
Then the suite draws the distributions every result carries (`figures["samples"]`:
label -> list of numbers) as PNG box plots and regenerates `benchmarks/RESULTS.md`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from stablesync.benchmarks.results import render_results, write_plots

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"__init__", "cli", "common", "inputs", "results"}


def discover() -> list[str]:
    names = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem in NOT_BENCHMARKS:
            continue
        text = path.read_text(encoding="utf-8")
        if "def main(" in text and "--out" in text:
            names.append(path.stem)
    return names


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run the benchmark suite.")
    parser.add_argument("--quick", action="store_true", help="short runs (the suite in under 3 minutes)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("benchmarks/results"),
        help="folder for JSON and plots (default benchmarks/results; relative to the current folder)",
    )
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names to run (default: all)")
    parser.add_argument(
        "--results-md",
        type=Path,
        default=Path("benchmarks/RESULTS.md"),
        help="the table to regenerate (default benchmarks/RESULTS.md, relative to the current folder)",
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=None,
        help="limit per benchmark (default 150 s with --quick, 2400 s otherwise: the soak runs 30 min)",
    )
    return parser


def run_one(name: str, out_json: Path, quick: bool, timeout_s: float) -> tuple[bool, float, str]:
    cmd = [sys.executable, "-m", f"stablesync.benchmarks.{name}", "--out", str(out_json)]
    cmd += ["--quick"] if quick else []
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=HERE.parent, timeout=timeout_s, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return False, time.monotonic() - start, f"timed out after {timeout_s:.0f} s"
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
    return proc.returncode == 0 and out_json.is_file(), time.monotonic() - start, "\n".join(tail)


def main(args: argparse.Namespace) -> int:
    from stablesync.errors import UserError

    names = discover()
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            raise UserError(f"--only {unknown[0]}: no such benchmark; expected one of {', '.join(names)}")
        names = [n for n in names if n in args.only]
    timeout_s = args.timeout_s or (150.0 if args.quick else 2400.0)
    # the benchmarks run in the package's parent folder: paths given relative to the user's
    # current folder are made absolute first
    out_dir: Path = args.out.resolve()
    results_md: Path = args.results_md.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results_md.parent.mkdir(parents=True, exist_ok=True)
    failed = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", flush=True)
        ok, took_s, tail = run_one(name, out_dir / f"{name}.json", args.quick, timeout_s)
        print(tail, flush=True)
        print(f"[{i}/{len(names)}] {name}: {'ok' if ok else 'FAILED'} in {took_s:.1f} s", flush=True)
        if not ok:
            failed.append(name)
    results = []
    for path in sorted(out_dir.glob("*.json")):
        try:
            results.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            failed.append(path.stem)
    plots = write_plots(results, out_dir)
    results_md.write_text(render_results(results, plots, quick=args.quick, out_dir=args.out))
    print(f"wrote {len(results)} results, {len(plots)} plots to {out_dir}; table in {results_md}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
