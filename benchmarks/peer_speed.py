"""The generator per frame against Wav2Lip's 96 px generator, side by side in one process.

    python -m stablesync.benchmarks.peer_speed --out F.json [--rounds N] [--threads 1,2]
        [--calls N] [--weights DIR] [--quick]

Graphs timed, each at batch 1 on onnxruntime CPU:
- `ours fp32`: the shipped export's `frame.onnx` (default `stablesync/assets/weights/cpu-rt`),
  and `ours int8`: its `frame_int8.onnx` when manifest.json lists one (timed whether or not its
  recorded quality check passed; `int8_usable` says whether the engine would choose it).
  Our per-frame cost is the frame graph alone: the reference features (`reference.onnx`) are
  computed once per session and cached, as the engine does; here once, on a random face.
- `wav2lip`: Wav2Lip's 96 px generator (`stablesync.benchmarks.peers`, written from the paper,
  36.3M parameters, random weights: speed does not depend on them), exported with the
  project's own exporter (`stablesync.export.graphs.export_graph`, torchscript, the shipped
  manifest's opset) into a temporary folder. Its per-frame cost is the whole generator: it
  has no cached reference path (the reference face is an input channel of every frame).
Sizes beside the figures: parameters and GFLOPs per frame (torch's flop counter, a
multiply-add counts 2; ours: the preset's per-frame part, as `stablesync presets` lists it).
Every session is opened by `stablesync.export.backends.ort.open_session`, as the engine opens
its own (optimisation level "all", thread pools that sleep instead of spinning, memory arena
on as in `stablesync run`), one session per graph and per `--threads` value.

Rounds are interleaved (fp32, int8, wav2lip, fp32, ... for each thread count in each round):
per graph, 2 warm-up calls, then `--calls` timed calls; recorded per frame: wall ms and the
process's CPU ms (every onnxruntime thread; idle pool threads sleep, so they cost nothing).
Reported: median and minimum over rounds, ratios ours / wav2lip of the medians (and the
median of the per-round ratios, which a load change during the run disturbs less), the CPU
model, and the 1-minute load average at the start, after every round and at the end.
A bar plot (`<out stem>_bars.png`) is written beside the JSON.
`--quick`: 3 rounds of 5 calls (the suite's short run).
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import environment, write_result

WARMUP = 2
PEER = "wav2lip"
Feed = NDArray[np.float32]


def default_weights() -> Path:
    from stablesync.bundled import ASSETS_DIR

    return ASSETS_DIR / "weights" / "cpu-rt"


def export_wav2lip(directory: Path, opset: int, seed: int = 0) -> tuple[Path, dict[str, float]]:
    """Wav2Lip's generator (seeded random init) as `directory/wav2lip.onnx`; returns the path and
    its size: parameters (M) and GFLOPs per frame (a multiply-add counts 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from stablesync.benchmarks.peers import Wav2LipGenerator, param_count, wav2lip_inputs
    from stablesync.export.graphs import export_graph

    torch.manual_seed(seed)
    model = Wav2LipGenerator().eval()
    face, mel = wav2lip_inputs(1, seed)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(face, mel)
    path = directory / f"{PEER}.onnx"
    export_graph(model, (face, mel), path, ["face", "mel"], ["out"], opset, "torchscript")
    return path, {"params_m": param_count(model) / 1e6, "gflops_per_frame": counter.get_total_flops() / 1e9}


def onnx_params_m(path: Path) -> float:
    """Parameters (M) stored in a graph's initializers (any dtype; batch norm folded or not)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer) / 1e6


def our_graphs(weights: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """{label: frame graph path} of the export (fp32, and int8 when listed), and what its
    manifest says: preset, opset, and the int8 graph's status."""
    from stablesync.export.manifest import check_graph_file, int8_usable, read_manifest

    manifest = read_manifest(weights)
    graphs = {"ours fp32": check_graph_file(weights, manifest, "frame")}
    if "frame_int8" in manifest.graphs:
        graphs["ours int8"] = check_graph_file(weights, manifest, "frame_int8")
    info = {
        "int8_listed": "frame_int8" in manifest.graphs,
        "int8_usable": int8_usable(manifest),
        "int8_psnr_db": manifest.int8_psnr_db,
        "opset": manifest.opset,
        "preset": manifest.preset,
        "image_size": manifest.image_size,
    }
    return graphs, info


def our_feeds(weights: Path, threads: int, seed: int = 0) -> dict[str, Feed]:
    """The frame graph's inputs at batch 1: cached reference features of a random face (from
    reference.onnx, run once), a random masked frame and a mel window."""
    from stablesync.export.backends.ort import open_session
    from stablesync.export.manifest import check_graph_file, read_manifest

    manifest = read_manifest(weights)
    rng = np.random.default_rng(seed)
    s = manifest.image_size
    reference = open_session(check_graph_file(weights, manifest, "reference"), "ort-cpu", threads)
    image = rng.random((1, 3, s, s), dtype=np.float32)
    features = reference.run(None, {"reference": image})
    feeds = {
        name: np.asarray(f, np.float32) for name, f in zip(manifest.feature_names(), features, strict=True)
    }
    feeds["frames"] = rng.random((1, 3, s, s), dtype=np.float32)
    feeds["mels"] = rng.uniform(-4, 4, (1, 1, manifest.mel.n_mels, manifest.window_frames)).astype(np.float32)
    return feeds


def peer_feeds(seed: int = 0) -> dict[str, Feed]:
    from stablesync.benchmarks.peers import wav2lip_inputs

    face, mel = wav2lip_inputs(1, seed)
    return {"face": face.numpy(), "mel": mel.numpy()}


def time_calls(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """(wall ms, process CPU ms) per call over `calls` calls, after WARMUP untimed ones."""
    for _ in range(WARMUP):
        call()
    cpu0_s, wall0_s = time.process_time(), time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - wall0_s) / calls * 1e3, (time.process_time() - cpu0_s) / calls * 1e3


def measure(
    graphs: dict[str, Path],
    feeds: dict[str, dict[str, Feed]],
    threads: list[int],
    rounds: int,
    calls: int,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Interleaved rounds over every (thread count, graph); per-round wall and CPU ms per frame."""
    from stablesync.export.backends.ort import open_session

    sessions = {(t, g): open_session(path, "ort-cpu", t) for t in threads for g, path in graphs.items()}
    for (t, g), session in sessions.items():  # every graph gives a 96x96 RGB face at batch 1
        (out,) = session.run(None, feeds[g])
        if out.shape != (1, 3, 96, 96):
            raise RuntimeError(f"{g} ({t} threads): output {out.shape}, expected (1, 3, 96, 96)")
    wall: dict[str, list[float]] = {f"{g} t{t}": [] for t, g in sessions}
    cpu: dict[str, list[float]] = {f"{g} t{t}": [] for t, g in sessions}
    loads = [os.getloadavg()[0]]
    for r in range(rounds):
        for (t, g), session in sessions.items():
            feed = feeds[g]
            wall_ms, cpu_ms = time_calls(functools.partial(session.run, None, feed), calls)
            wall[f"{g} t{t}"].append(wall_ms)
            cpu[f"{g} t{t}"].append(cpu_ms)
        loads.append(os.getloadavg()[0])
        log(
            f"round {r + 1}/{rounds}: "
            + ", ".join(f"{k} {v[-1]:.1f}" for k, v in wall.items())
            + f" wall ms; load {loads[-1]:.2f}"
        )
    return {"wall": wall, "cpu": cpu, "loads": loads}


def summarise(raw: dict[str, Any], graphs: list[str], threads: list[int]) -> list[dict[str, Any]]:
    """One row per (graph, threads): medians, minima, and ratios against wav2lip's row."""
    rows = []
    for t in threads:
        peer_wall, peer_cpu = raw["wall"][f"{PEER} t{t}"], raw["cpu"][f"{PEER} t{t}"]
        for g in graphs:
            w, c = raw["wall"][f"{g} t{t}"], raw["cpu"][f"{g} t{t}"]
            row: dict[str, Any] = {
                "name": f"{g} t{t}",  # names the row in RESULTS.md's generated table
                "graph": g,
                "threads": t,
                "wall_ms_median": statistics.median(w),
                "wall_ms_min": min(w),
                "cpu_ms_median": statistics.median(c),
                "cpu_ms_min": min(c),
            }
            if g != PEER:
                row["wall_ratio"] = row["wall_ms_median"] / statistics.median(peer_wall)
                row["cpu_ratio"] = row["cpu_ms_median"] / statistics.median(peer_cpu)
                row["wall_ratio_paired"] = statistics.median(a / b for a, b in zip(w, peer_wall, strict=True))
                row["cpu_ratio_paired"] = statistics.median(a / b for a, b in zip(c, peer_cpu, strict=True))
            rows.append(row)
    return rows


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars: wall and CPU ms per frame (median) for each graph, per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in rows})
    names = list(dict.fromkeys(r["graph"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 3.2), sharey=True)
    width = 0.8 / len(names)
    for ax, key, label in zip(
        axes, ("wall_ms_median", "cpu_ms_median"), ("wall", "process CPU"), strict=True
    ):
        for i, name in enumerate(names):
            values = [next(r[key] for r in rows if r["graph"] == name and r["threads"] == t) for t in threads]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(threads))]
            bars = ax.bar(xs, values, width, label=name)
            ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(threads)), [f"{t} thread{'s' if t > 1 else ''}" for t in threads])
        ax.set_title(f"{label} ms per frame (median)", fontsize=9)
    axes[0].set_ylabel("ms per frame, batch 1")
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def render_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| graph | threads | wall ms/frame (median) | (min) | CPU ms/frame (median) | (min)"
        " | wall ours/wav2lip | CPU ours/wav2lip |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratios = (
            f" | {r['wall_ratio']:.3f} ({r['wall_ratio_paired']:.3f}) | {r['cpu_ratio']:.3f}"
            f" ({r['cpu_ratio_paired']:.3f}) |"
            if "wall_ratio" in r
            else " | | |"
        )
        lines.append(
            f"| {r['graph']} | {r['threads']} | {r['wall_ms_median']:.2f} | {r['wall_ms_min']:.2f}"
            f" | {r['cpu_ms_median']:.2f} | {r['cpu_ms_min']:.2f}" + ratios
        )
    return "\n".join(lines)


def _threads(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected thread counts such as 1,2") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected thread counts >= 1 such as 1,2")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.peer_speed",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--out", type=Path, default=Path("runs/bench/peer_speed.json"))
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 20, quick 3)")
    parser.add_argument(
        "--calls", type=int, default=None, help="timed calls per graph a round (default 10, quick 5)"
    )
    parser.add_argument(
        "--threads", type=_threads, default=[1, 2], help="intra-op thread counts (default 1,2)"
    )
    parser.add_argument("--weights", type=Path, default=None, help="our export (default the shipped cpu-rt)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 calls")
    return parser


def main(argv: list[str] | None = None) -> int:
    from stablesync.models.cli import preset_costs

    args = build_parser().parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 20)
    calls = args.calls or (5 if args.quick else 10)
    weights: Path = args.weights or default_weights()
    load_start = os.getloadavg()
    graphs, export = our_graphs(weights)
    with tempfile.TemporaryDirectory(prefix="peer_speed_") as tmp:
        peer_path, peer_size = export_wav2lip(Path(tmp), export["opset"])
        graphs[PEER] = peer_path
        ours = our_feeds(weights, 1)  # the int8 graph takes the same inputs
        feeds = {g: ours for g in graphs if g != PEER}
        feeds[PEER] = peer_feeds()
        # parameters and GFLOPs per frame from torch (ours: the preset's per-frame part);
        # onnx_initializers_m: what the graph stores (batch norm folded or not)
        costs = preset_costs(export["preset"])
        ours_size = {"params_m": costs["frame_params_m"], "gflops_per_frame": costs["gflops_per_frame"]}
        sizes = {
            g: {**(peer_size if g == PEER else ours_size), "onnx_initializers_m": onnx_params_m(p)}
            for g, p in graphs.items()
        }
        raw = measure(graphs, feeds, args.threads, rounds, calls)
    load_end = os.getloadavg()
    rows = summarise(raw, list(graphs), args.threads)
    print(render_table(rows))
    plot_path = args.out.with_name(f"{args.out.stem}_bars.png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = {
        "weights": str(weights),
        "rounds": rounds,
        "calls_per_round": calls,
        "threads": args.threads,
        "quick": args.quick,
        "load_1m_start": load_start[0],
        "load_1m_end": load_end[0],
        "load_average_start": list(load_start),
        "load_average_end": list(load_end),
        "load_1m_per_round": raw["loads"],
        "export": export,
        "sizes": sizes,
        "rows": rows,
        "samples": {f"{k} wall": v for k, v in raw["wall"].items()},
        "samples_unit": "wall ms per frame (batch 1)",
        "samples_cpu_ms": raw["cpu"],
        "images": [plot_path.name],  # shown under the table in RESULTS.md
    }
    cpu_model = environment()["cpu"]
    plot(rows, plot_path, f"{cpu_model}; load {load_start[0]:.2f} -> {load_end[0]:.2f}")
    path = write_result(args.out, "peer_speed", figures)
    print(f"CPU {cpu_model}; load average (1 min) {load_start[0]:.2f} at start, {load_end[0]:.2f} at end")
    print(f"wrote {path} and {plot_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
