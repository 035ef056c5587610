"""The peer generator the speed benchmark times ours against, and the benchmark's bookkeeping
(no timing assertions: those belong to benchmarks/RESULTS.md)."""

from pathlib import Path

import numpy as np
import pytest

from stablesync.benchmarks.cli import discover
from stablesync.benchmarks.peer_speed import PEER, export_wav2lip, peer_feeds, render_table, summarise
from stablesync.benchmarks.peers import Wav2LipGenerator, param_count


def test_wav2lip_has_the_published_size() -> None:
    # its repository's README: ~36M parameters
    assert 34e6 <= param_count(Wav2LipGenerator()) <= 38e6


def test_wav2lip_exports_and_runs_on_onnxruntime(tmp_path: Path) -> None:
    from stablesync.export.backends.ort import open_session

    path, size = export_wav2lip(tmp_path, opset=18)
    assert 34 <= size["params_m"] <= 38 and size["gflops_per_frame"] > 1
    session = open_session(path, "ort-cpu", 1)
    assert [i.name for i in session.get_inputs()] == ["face", "mel"]
    (out,) = session.run(None, peer_feeds())
    assert out.shape == (1, 3, 96, 96) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0  # the sigmoid output block


def test_summary_rows_carry_ratios_against_the_peer() -> None:
    raw = {
        "wall": {"ours fp32 t1": [2.0, 4.0, 3.0], f"{PEER} t1": [20.0, 20.0, 30.0]},
        "cpu": {"ours fp32 t1": [2.0, 2.0, 2.0], f"{PEER} t1": [10.0, 20.0, 20.0]},
    }
    ours, peer = summarise(raw, ["ours fp32", PEER], [1])
    assert ours["wall_ratio"] == pytest.approx(3.0 / 20.0) and ours["cpu_ratio"] == pytest.approx(0.1)
    assert ours["wall_ratio_paired"] == pytest.approx(0.1)  # the median of 0.1, 0.2, 0.1
    assert "wall_ratio" not in peer and peer["wall_ms_min"] == 20.0
    assert ours["name"] != peer["name"]  # rows stay apart in RESULTS.md's generated table
    assert render_table([ours, peer]).count("\n") == 3


def test_the_suite_lists_it() -> None:
    assert "peer_speed" in discover() and "peers" not in discover()


def test_the_int8_graph_is_timed_when_the_manifest_lists_one(tmp_path: Path) -> None:
    import json
    import shutil

    from stablesync.benchmarks.peer_speed import default_weights, our_graphs

    shipped = default_weights()
    graphs, export = our_graphs(shipped)
    assert list(graphs) == ["ours fp32"] + (["ours int8"] if export["int8_listed"] else [])
    for name in ("manifest.json", "reference.onnx", "frame.onnx"):
        shutil.copy(shipped / name, tmp_path / name)
    shutil.copy(shipped / "frame.onnx", tmp_path / "frame_int8.onnx")  # stands in for a real one
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["graphs"]["frame_int8"] = {**manifest["graphs"]["frame"], "file": "frame_int8.onnx"}
    # a failed check (no recorded verdict, and 20 dB at export): still timed, not what the engine picks
    manifest["int8_check"], manifest["int8_psnr_db"] = None, 20.0
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    graphs, export = our_graphs(tmp_path)
    assert graphs == {"ours fp32": tmp_path / "frame.onnx", "ours int8": tmp_path / "frame_int8.onnx"}
    assert export["int8_listed"] and not export["int8_usable"] and export["preset"] == "cpu-rt"
