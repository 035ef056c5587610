"""benchmarks/gpu.py: part of `stablesync bench`, and a one-line skip where there is no CUDA."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stablesync.benchmarks import gpu
from stablesync.benchmarks.cli import discover


def test_the_suite_finds_it() -> None:
    assert "gpu" in discover()


def test_without_cuda_it_skips_and_keeps_an_earlier_gpu_result(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the benchmark would run")
    out = tmp_path / "gpu.json"
    assert gpu.main(["--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == "gpu: skipped: no CUDA device"
    assert json.loads(out.read_text())["figures"] == {"skipped": "no CUDA device"}
    earlier = {"benchmark": "gpu", "figures": {"device": "NVIDIA H200", "sessions_held": 64}}
    out.write_text(json.dumps(earlier))
    assert gpu.main(["--out", str(out)]) == 0
    assert json.loads(out.read_text()) == earlier
