"""Export: every preset to ONNX with parity checked, the manifest, and the engines available here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

if TYPE_CHECKING:
    import torch

from stablesync.export import load_engine
from stablesync.export.manifest import MANIFEST_VERSION, read_manifest


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


def test_ort_engine_runs_without_torch(cpu_rt_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = (
        "import sys, numpy as np\n"
        "from stablesync.export import load_engine\n"
        f"e = load_engine({str(cpu_rt_export)!r}, 'ort-cpu')\n"
        "f = e.encode_reference(np.random.rand(2, 3, 96, 96).astype(np.float32))\n"
        "x = np.random.rand(2, 3, 96, 96).astype(np.float32)\n"
        "y = e.generate(f, x, np.zeros((2, 1, 80, 16), np.float32))\n"
        "assert y.shape == (2, 3, 96, 96) and np.isfinite(y).all()\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok', e.backend)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok ort-cpu"


def test_auto_takes_the_fastest_backend_available_here(
    cpu_rt_export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "auto" is the first of AUTO_ORDER available here (torch only where CUDA is); without an
    NVIDIA GPU that is ort-cpu, chosen without importing torch."""
    from stablesync.export import backends

    code = (
        "import sys\n"
        "from stablesync.export import load_engine\n"
        f"e = load_engine({str(cpu_rt_export)!r}, 'auto')\n"
        "print(e.backend, 'torch' in sys.modules)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    chosen, imported_torch = res.stdout.split()
    if not backends.nvidia_gpu_present():
        assert (chosen, imported_torch) == ("ort-cpu", "False")
    else:
        assert chosen == backends.pick_auto()
    assert chosen in backends.available_backends()
    faster = backends.AUTO_ORDER[: backends.AUTO_ORDER.index(chosen)]
    assert not any(b != "torch" and backends.available(b) for b in faster), faster
    if "torch" in faster:
        assert not backends.torch_cuda_available()


def test_ort_sessions_sleep_when_idle(cpu_rt_export: Path) -> None:
    """Every onnxruntime session the engines open has spinning off (the default spins)."""
    from stablesync.export.backends.ort import SPIN_KEYS, OrtEngine

    engine = load_engine(cpu_rt_export, "ort-cpu")
    assert isinstance(engine, OrtEngine)
    for session in engine._sessions.values():
        options = session.get_session_options()
        for key in SPIN_KEYS:
            assert options.get_session_config_entry(key) == "0", key


def test_live_commands_run_numpy_blas_on_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """`stablesync demo/run/serve` set OPENBLAS_NUM_THREADS before numpy loads; other commands don't."""
    code = (
        "import os, sys\n"
        "from stablesync import cli\n"
        "os.environ.pop('OPENBLAS_NUM_THREADS', None)\n"
        "try:\n"
        "    cli.main([sys.argv[1], '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('threads', os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    for command, expected in (("demo", "threads 1"), ("presets", "threads None")):
        res = subprocess.run(
            [sys.executable, "-c", code, command], capture_output=True, text=True, timeout=120
        )
        assert res.stdout.strip().splitlines()[-1] == expected, (command, res.stdout, res.stderr)


def test_opening_a_live_engine_holds_numpy_blas_to_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that loaded numpy with its default BLAS pool (a benchmark, an embedding app) gets
    it cut to one thread when it opens the real-time engine: the pool's idle workers otherwise
    spin in sched_yield, a whole core in a paced session."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU: BLAS runs on one thread anyway, nothing to limit")
    code = (
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from stablesync.realtime.pipeline.loading import open_engine\n"
        "def blas():\n"
        "    return [p['num_threads'] for p in threadpool_info() if p['user_api'] == 'blas']\n"
        "print('before', blas())\n"
        "open_engine(None, 'ort-cpu', 1)\n"
        "print('after', blas())\n"
    )
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = dict(line.split(" ", 1) for line in res.stdout.strip().splitlines())
    assert lines["before"] != "[]" and lines["before"] != "[1]", (res.stdout, res.stderr)
    assert lines["after"] == "[1]", (res.stdout, res.stderr)


def test_serve_opens_its_engine_without_onnxruntimes_memory_arena_and_run_with_it() -> None:
    """serve's batch sizes vary with the sessions open and the arena keeps the largest buffers it
    ever handed out (its memory grew over a long call); one session's constant shapes keep it."""
    from stablesync.realtime.pipeline.loading import open_engine, open_serve_engine

    opened = ((open_serve_engine(None, "ort-cpu"), 0, 1), (open_engine(None, "ort-cpu"), 1, 1))
    for engine, arena, threads in opened:
        for session in engine._sessions.values():  # type: ignore[attr-defined]
            options = session.get_session_options()
            assert (options.enable_cpu_mem_arena, options.intra_op_num_threads) == (arena, threads)


def test_one_onnxruntime_thread_a_call_unless_asked_and_serve_runs_two_calls_at_once() -> None:
    """A second intra-op thread costs more CPU than it saves time on a frame's small graph: `run`
    and `demo` open one unless `--threads` asks for more; `serve`'s `--threads` is how many
    one-thread calls run at once (two sessions' frames side by side)."""
    from stablesync.realtime.cli import demo, run, serve
    from stablesync.realtime.pipeline.loading import open_engine

    assert run.build_parser("stablesync run").parse_args([]).threads == 1
    assert demo.build_parser("stablesync demo").parse_args([]).threads == 1
    assert serve.build_parser("stablesync serve").parse_args([]).threads == 2
    asked = open_engine(None, "ort-cpu", run.build_parser("r").parse_args(["--threads", "2"]).threads)
    for session in asked._sessions.values():  # type: ignore[attr-defined]
        assert session.get_session_options().intra_op_num_threads == 2


def _like_trained(model: torch.nn.Module) -> None:
    """Batch-norm statistics and affine terms as training leaves them, not the identity of init."""
    import torch

    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.05)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)


@pytest.mark.slow
def test_fold_batch_norm_keeps_the_outputs() -> None:
    import torch

    from stablesync.export.fold import fold_batch_norm
    from stablesync.models import create

    torch.manual_seed(0)
    model = create("cpu-rt").eval()
    _like_trained(model)
    x, frames, mels = torch.rand(2, 3, 96, 96), torch.rand(2, 3, 96, 96), torch.randn(2, 1, 80, 16)
    with torch.no_grad():
        before = model.generate(model.encode_reference(x), frames, mels)
        n = fold_batch_norm(model)
        after = model.generate(model.encode_reference(x), frames, mels)
    assert n > 50 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert float((before - after).abs().max()) < 1e-4
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norm(create("cpu-rt").train())


@pytest.mark.slow
def test_cli_exports_checkpoint_with_syncnet_and_fp16_weights(tmp_path: Path) -> None:
    import torch

    from stablesync import checkpoint
    from stablesync.models import AVSyncNet, create, get_preset

    torch.manual_seed(1)
    ckpt, sync_ckpt, out = tmp_path / "lipsync.safetensors", tmp_path / "sync.safetensors", tmp_path / "out"
    model = create("cpu-rt")
    _like_trained(model)  # batch norm far from identity: folding then rounding must stay exact
    checkpoint.save(ckpt, model, model.cfg)
    syncnet = AVSyncNet(get_preset("cpu-rt").syncnet)
    checkpoint.save(sync_ckpt, syncnet, syncnet.cfg)
    args = ["--checkpoint", str(ckpt), "--syncnet", str(sync_ckpt), "--fp16-weights", "--out", str(out)]
    res = subprocess.run(
        [sys.executable, "-m", "stablesync", "export", *args], capture_output=True, text=True, timeout=280
    )
    assert res.returncode == 0, res.stderr
    assert "parity syncnet/corpus" in res.stdout
    m = read_manifest(out)
    assert m.preset == "cpu-rt" and m.weights_dtype == "float16" and m.image_size == 96
    assert {"reference", "frame", "syncnet"} == set(m.graphs)
    assert m.graphs["syncnet"].inputs == {"frames": "float32", "mel": "float32"}
    assert m.graphs["syncnet"].outputs == {"similarity": "float32"}
    # fp16 storage: about 2 bytes per parameter, parity to 1e-4 (relative) of the folded, rounded torch model
    n_params = sum(p.numel() for p in model.parameters())
    assert (out / "frame.onnx").stat().st_size + (out / "reference.onnx").stat().st_size < 2.2 * n_params
    assert max(m.parity_max_abs_error.values()) <= 1e-3  # 1e-4 x the largest |feature|
    # the torch engine on the fp16-stored checkpoint agrees with the graphs
    images, frames, mels = _inputs(96, 2)
    ort_engine, torch_engine = load_engine(out, "ort-cpu"), load_engine(out, "torch")
    feats = torch_engine.encode_reference(images)
    assert (
        np.abs(ort_engine.generate(feats, frames, mels) - torch_engine.generate(feats, frames, mels)).max()
        < 1e-4
    )


@pytest.mark.slow
def test_int8_frame_graph_kept_only_above_the_psnr_bound(cpu_rt_export: Path, tmp_path: Path) -> None:
    import shutil

    from stablesync.export.manifest import write_manifest
    from stablesync.export.quantize import psnr_db, quantize_frame
    from stablesync.export.sample_inputs import InputSpec, corpus_like_inputs

    out = tmp_path / "q"
    shutil.copytree(cpu_rt_export, out)
    m = read_manifest(out)
    spec = InputSpec(m.image_size, m.window_frames, m.fps, m.lookahead_ms, m.mel)
    samples = corpus_like_inputs(spec, 4)
    lines: list[str] = []
    dropped = quantize_frame(out, m, samples, lines.append, min_psnr_db=float("inf"))
    assert "frame_int8" not in dropped.graphs and not (out / "frame_int8.onnx").exists()
    assert "dropped" in lines[-1]
    kept = quantize_frame(out, m, samples, lines.append)
    assert kept.int8_psnr_db is not None and kept.int8_psnr_db >= 35.0 and kept.int8_speedup is not None
    write_manifest(out, kept)
    int8, fp32 = load_engine(out, "ort-cpu"), load_engine(out, "ort-cpu", prefer_int8=False)
    assert (int8.frame_graph, fp32.frame_graph) == ("frame_int8", "frame")  # type: ignore[attr-defined]
    feats = fp32.encode_reference(samples.images)
    assert (
        psnr_db(
            int8.generate(feats, samples.frames, samples.mels),
            fp32.generate(feats, samples.frames, samples.mels),
        )
        >= 35.0
    )


@pytest.mark.slow
def test_paper_exports(tmp_path: Path) -> None:
    import torch

    from stablesync.export.exporter import ExportOptions, export_model
    from stablesync.models import create

    torch.manual_seed(3)
    options = ExportOptions(parity_batch=1, write_checkpoint=False)
    m = export_model(create("paper"), tmp_path / "p", options, log=lambda _: None)
    assert (m.preset, m.image_size, len(m.feature_shapes), m.weights_dtype) == ("paper", 96, 5, "float32")
    assert m.feature_shapes[-1] == (512, 6, 6)
    assert max(m.parity_max_abs_error.values()) <= 1e-4
    engine = load_engine(tmp_path / "p", "ort-cpu")
    images, frames, mels = _inputs(96, 2)
    assert engine.generate(engine.encode_reference(images), frames, mels).shape == (2, 3, 96, 96)


@pytest.mark.slow
def test_gpu_256_exports_at_batch_1(tmp_path: Path) -> None:
    import torch

    from stablesync.export.exporter import ExportOptions, export_model
    from stablesync.models import create

    torch.manual_seed(2)
    options = ExportOptions(parity_batch=1, fp16_weights=True, write_checkpoint=False)
    m = export_model(create("gpu-256"), tmp_path / "g", options, log=lambda _: None)
    assert m.preset == "gpu-256" and m.image_size == 256 and m.checkpoint == ""
    assert len(m.feature_shapes) == 6 and m.feature_shapes[-1][1:] == (8, 8)
    assert m.graphs["frame"].inputs["feat5"] == "float32"
    # parity ran the graphs in onnxruntime (batch 1, random and corpus-like) against torch
    assert set(m.parity_max_abs_error) == {
        "reference/random",
        "frame/random",
        "reference/corpus",
        "frame/corpus",
    }
    assert max(m.parity_max_abs_error.values()) <= 1e-3  # 1e-4 x the largest |feature|
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == [
        "frame.onnx",
        "manifest.json",
        "reference.onnx",
    ]
