"""Export: every preset to ONNX with parity checked, the manifest, and the engines available here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export import load_engine
from export.manifest import MANIFEST_VERSION, read_manifest


def _inputs(s: int, b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.random((b, 3, s, s), dtype=np.float32),
        rng.random((b, 3, s, s), dtype=np.float32),
        rng.uniform(-4, 4, (b, 1, 80, 16)).astype(np.float32),
    )


def test_manifest_describes_the_export(cpu_rt_export: Path) -> None:
    m = read_manifest(cpu_rt_export)
    assert m.manifest_version == MANIFEST_VERSION
    assert (m.preset, m.image_size, m.window_frames, m.opset) == ("cpu-rt", 96, 16, 18)
    assert m.fps == 25.0 and m.lookahead_ms == 80.0 and m.mel.n_mels == 80
    assert list(m.graphs["reference"].inputs) == ["reference"]
    assert list(m.graphs["frame"].inputs) == [*m.feature_names(), "frames", "mels"]
    assert m.graphs["frame"].outputs == {"face": "float32"}
    assert len(m.feature_shapes) == 5 and m.feature_shapes[0] == (16, 96, 96)
    assert set(m.parity_max_abs_error) == {
        "reference/random",
        "frame/random",
        "reference/corpus",
        "frame/corpus",
    }
    assert max(m.parity_max_abs_error.values()) <= 1e-4
    assert len(m.weights_sha256) == 64


def test_ort_cpu_matches_torch_engine_batched(cpu_rt_export: Path) -> None:
    ort_engine = load_engine(cpu_rt_export, "ort-cpu")
    torch_engine = load_engine(cpu_rt_export, "torch")
    assert (ort_engine.backend, torch_engine.backend) == ("ort-cpu", "torch")
    for b in (1, 3):
        images, frames, mels = _inputs(96, b, seed=b)
        feats = ort_engine.encode_reference(images)
        assert [f.shape[0] for f in feats] == [b] * 5
        for a, t in zip(feats, torch_engine.encode_reference(images), strict=True):
            assert np.abs(a - t).max() <= 1e-4
        out = ort_engine.generate(feats, frames, mels)
        assert out.shape == (b, 3, 96, 96) and out.dtype == np.float32
        assert np.abs(out - torch_engine.generate(feats, frames, mels)).max() <= 1e-4


def test_ort_engine_runs_without_torch(cpu_rt_export: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from export import load_engine\n"
        f"e = load_engine({str(cpu_rt_export)!r}, 'auto')\n"
        "f = e.encode_reference(np.random.rand(2, 3, 96, 96).astype(np.float32))\n"
        "x = np.random.rand(2, 3, 96, 96).astype(np.float32)\n"
        "y = e.generate(f, x, np.zeros((2, 1, 80, 16), np.float32))\n"
        "assert y.shape == (2, 3, 96, 96) and np.isfinite(y).all()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok', e.backend)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok ort-cpu"


@pytest.mark.slow
def test_cli_random_init_export(tmp_path: Path) -> None:
    out = tmp_path / "paper"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "stablesync",
            "export",
            "--random-init",
            "--preset",
            "paper",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert res.returncode == 0, res.stderr
    assert "parity frame/corpus" in res.stdout
    raw = json.loads((out / "manifest.json").read_text())
    assert raw["preset"] == "paper" and max(raw["parity_max_abs_error"].values()) <= 1e-4
    engine = load_engine(out, "ort-cpu")
    images, frames, mels = _inputs(96, 2)
    assert engine.generate(engine.encode_reference(images), frames, mels).shape == (2, 3, 96, 96)
