"""The benchmark suite's own machinery: the latency probe's measurements and the runner."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stablesync.benchmarks.latency_probe import RATE_HZ, response_frame, sound_onsets


def test_sound_onsets_find_bursts_after_silence_only() -> None:
    t = np.arange(int(4.0 * RATE_HZ)) / RATE_HZ
    x = np.zeros_like(t, dtype=np.float32)
    for start, stop in ((0.8, 1.2), (1.3, 1.5), (2.6, 3.0)):  # the second follows a 0.1 s gap only
        x[(t >= start) & (t < stop)] = 0.5 * np.sin(2 * np.pi * 200 * t[(t >= start) & (t < stop)])
    onsets = sound_onsets(x, min_gap_s=0.5)
    assert len(onsets) == 2
    assert abs(onsets[0] - 0.8) <= 0.011 and abs(onsets[1] - 2.6) <= 0.011


def test_response_frame_is_the_half_rise_and_none_without_a_rise() -> None:
    pts = np.arange(100) / 25.0
    opening = np.full(100, 0.02)
    opening[52:60] = np.linspace(0.02, 0.3, 8)  # rises from frame 52 (2.08 s)
    opening[60:70] = 0.3
    k = response_frame(pts, opening, onset_s=2.0)
    assert k is not None and 55 <= k <= 56  # halfway between 0.02 and 0.3
    assert response_frame(pts, np.full(100, 0.02), onset_s=2.0) is None
    noisy = np.full(100, 0.02)
    noisy[:] += np.random.default_rng(0).normal(0, 0.003, 100)
    assert response_frame(pts, noisy, onset_s=2.0) is None


@pytest.mark.slow
def test_bench_quick_runs_and_writes_valid_json(tmp_path: Path) -> None:
    """`stablesync bench --quick` on two of its benchmarks (the whole quick suite takes minutes):
    each writes valid JSON with the environment, and the table is regenerated."""
    out, md = tmp_path / "out", tmp_path / "RESULTS.md"
    cmd = [sys.executable, "-m", "stablesync", "bench", "--quick", "--only", "corpus_speed", "generator"]
    cmd += ["--out", str(out), "--results-md", str(md)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for name in ("corpus_speed", "generator"):
        result = json.loads((out / f"{name}.json").read_text())
        assert result["benchmark"] == name and result["environment"]["cores"] >= 1
        assert result["environment"]["versions"]["numpy"] and result["figures"]
        assert f"## {name}" in md.read_text()
    assert (out / "generator.png").stat().st_size > 1000  # the distribution plot


def test_bench_rejects_an_unknown_benchmark(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "stablesync", "bench", "--only", "nope", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no such benchmark" in proc.stderr and proc.stderr.count("\n") == 1
