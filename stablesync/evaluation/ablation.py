"""Writes the ablation table (docs/ablation.md) from finished runs and their eval reports.

    python -m stablesync.evaluation.ablation --data runs/data/prepared \
        --run "a=runs/ablation/a" --run "b=runs/ablation/b" ... \
        --syncnet runs/cpu-rt/syncnet/best.safetensors \
        --baseline runs/ablation/wav2lip_syncnet/best.safetensors --out docs/ablation.md

Each RUN folder holds the training run (log.csv) and `eval.json` (`stablesync eval` output of
the checkpoint to compare). The sync experts are compared on the ground truth of the split.
Numbers come only from those files; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stablesync.evaluation.stability import cosine_fluctuation, sync_term_stats

METRICS = (
    ("lse_c", "LSE-C ↑"),
    ("lse_d", "LSE-D ↓"),
    ("offset_accuracy", "offset acc ↑"),
    ("psnr", "PSNR ↑"),
    ("ssim", "SSIM ↑"),
    ("lmd", "LMD ↓"),
    ("mouth_open_corr", "mouth-open corr ↑"),
    ("lip_leak", "lip leak ↓"),
    ("silent_closed_fraction", "silent closed ↑"),
)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def table(runs: dict[str, Path]) -> tuple[str, dict[str, dict[str, Any]]]:
    head = "| run | " + " | ".join(label for _, label in METRICS) + " | sync term std | sync term std/mean |"
    lines = [head, "|" + "---|" * (len(METRICS) + 3)]
    collected: dict[str, dict[str, Any]] = {}
    gt: dict[str, Any] | None = None
    for name, folder in runs.items():
        report = json.loads((folder / "eval.json").read_text())
        stats = sync_term_stats(folder / "log.csv") if (folder / "log.csv").is_file() else {}
        collected[name] = {"report": {k: report.get(k) for k, _ in METRICS}, "sync_term": stats}
        cells = [_fmt(report.get(k)) for k, _ in METRICS]
        cells += [_fmt(stats.get("sync_std")), _fmt(stats.get("sync_cv"))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        gt = report.get("ground_truth", gt)
    if gt is not None:
        lines.append("| ground truth | " + " | ".join(_fmt(gt.get(k)) for k, _ in METRICS) + " | | |")
    return "\n".join(lines), collected


def plot_sync_terms(runs: dict[str, Path], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stablesync.train.logs import series

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for name, folder in runs.items():
        data = series(folder / "log.csv")
        for ax, key in zip(axes, ("sync", "sim_fake"), strict=True):
            if ("train", key) in data:
                ax.plot(*data[("train", key)], label=name, linewidth=1)
    axes[0].set_title("training sync term (L_ss or plain)")
    axes[1].set_title("AVSyncNet cosine of generated frames (train)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def plot_cosine_traces(traces: dict[str, list[float]], png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    for name, trace in traces.items():
        ax.plot(trace, label=name, linewidth=1)
    ax.set_xlabel("5-frame window (ground truth, first test clip)")
    ax.set_ylabel("cosine with its own audio")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import torch

    from stablesync import checkpoint
    from stablesync.models.syncnet import AVSyncNet
    from stablesync.train.data import PreparedData

    p = argparse.ArgumentParser(prog="python -m stablesync.evaluation.ablation")
    p.add_argument("--data", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--run", action="append", default=[], help="NAME=FOLDER (log.csv + eval.json)")
    p.add_argument("--syncnet", required=True)
    p.add_argument("--baseline", required=True, help="Wav2Lip-sized SyncNet checkpoint")
    p.add_argument("--out", required=True, help="JSON with every figure")
    p.add_argument("--plots", required=True, help="folder for the PNGs")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    runs = {spec.split("=", 1)[0]: Path(spec.split("=", 1)[1]) for spec in args.run}
    plots = Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    md, collected = table(runs) if runs else ("", {})
    if runs:
        plot_sync_terms(runs, plots / "ablation_sync_terms.png")
    data = PreparedData(args.data, args.split)
    experts: dict[str, Any] = {}
    traces: dict[str, list[float]] = {}
    for name, path in (("AVSyncNet", args.syncnet), ("Wav2Lip-sized SyncNet", args.baseline)):
        net, _ = checkpoint.load(path, expect_arch="avsyncnet")
        assert isinstance(net, AVSyncNet)
        stats = cosine_fluctuation(net, data)
        traces[name] = stats.pop("trace_first_clip")  # type: ignore[assignment]
        experts[name] = {
            **stats,
            "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
            "checkpoint": path,
        }
    plot_cosine_traces(traces, plots / "ablation_cosine_gt.png")
    result = {"table_markdown": md, "runs": collected, "experts": experts, "split": args.split}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(md)
    print(json.dumps(experts, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
