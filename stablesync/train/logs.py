"""Training logs: a long-format CSV of losses and validation metrics, and PNG curves.

`log.csv` has the columns step, phase ("train" or "val"), name, value: new metrics need no
new columns, and resuming drops the rows written after the step it resumes from.
`curves.png` (one panel per metric, train and val in each) is redrawn beside the checkpoints.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

FIELDS = ("step", "phase", "name", "value")


class CsvLog:
    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not path.is_file():
            self._rewrite([])
        else:
            self._rewrite([r for r in read_log(path) if int(r[0]) <= resume_step])

    def _rewrite(self, rows: list[tuple[str, str, str, str]]) -> None:
        tmp = self.path.with_name(self.path.name + ".partial")
        with tmp.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(FIELDS)
            w.writerows(rows)
        tmp.replace(self.path)

    def write(self, step: int, phase: str, values: dict[str, float]) -> None:
        with self.path.open("a", newline="") as f:
            w = csv.writer(f)
            for name, value in sorted(values.items()):
                w.writerow((step, phase, name, f"{value:.6g}"))


def read_log(path: Path) -> list[tuple[str, str, str, str]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return [(r[0], r[1], r[2], r[3]) for r in rows[1:] if len(r) == 4]


def series(path: Path) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """(phase, name) -> (steps, values) from a log.csv."""
    out: dict[tuple[str, str], tuple[list[int], list[float]]] = defaultdict(lambda: ([], []))
    for step, phase, name, value in read_log(path):
        steps, values = out[(phase, name)]
        steps.append(int(step))
        values.append(float(value))
    return dict(out)


def plot_curves(csv_path: Path, png_path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = series(csv_path)
    names = sorted({name for _, name in data})
    if not names:
        return
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        for phase, style in (("train", "-"), ("val", "o-")):
            if (phase, name) in data:
                steps, values = data[(phase, name)]
                ax.plot(steps, values, style, label=phase, markersize=3, linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    tmp = png_path.with_name(png_path.stem + ".partial.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(png_path)
