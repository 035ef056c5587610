"""The CPU engine runs frame_int8.onnx only when the export's recorded quality check passed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from stablesync.export.backends.ort import OrtEngine
from stablesync.export.manifest import (
    Int8Check,
    Manifest,
    int8_usable,
    read_manifest,
    sha256_file,
    write_manifest,
)

SHIPPED = Path(__file__).resolve().parent.parent / "stablesync" / "assets" / "weights" / "cpu-rt"


def _check(passed: bool) -> Int8Check:
    return Int8Check(
        passed=passed, psnr_db=41.0, mouth_opening_r=0.98, opening_std_ratio=0.97, frames=300, inputs="test"
    )


def _export_with_int8(tmp_path: Path, check: Int8Check | None, psnr_db: float | None = None) -> Path:
    """The shipped export's graphs linked into tmp_path, with frame.onnx standing in for
    frame_int8.onnx (same inputs and metadata), recording `check` and `psnr_db`."""
    out = tmp_path / "cpu-rt"
    out.mkdir()
    for name in ("reference.onnx", "frame.onnx"):
        (out / name).symlink_to(SHIPPED / name)
    (out / "frame_int8.onnx").symlink_to(SHIPPED / "frame.onnx")
    manifest = read_manifest(SHIPPED)
    graphs = {k: v for k, v in manifest.graphs.items() if k in ("reference", "frame")}
    graphs["frame_int8"] = dataclasses.replace(
        graphs["frame"], file="frame_int8.onnx", sha256=sha256_file(out / "frame_int8.onnx")
    )
    write_manifest(
        out,
        dataclasses.replace(manifest, graphs=graphs, checkpoint="", int8_check=check, int8_psnr_db=psnr_db),
    )
    return out


def _frame_graph(directory: Path, prefer_int8: bool = True) -> str:
    return OrtEngine(directory, read_manifest(directory), prefer_int8=prefer_int8).frame_graph


def test_int8_chosen_when_its_check_passed(tmp_path: Path) -> None:
    directory = _export_with_int8(tmp_path, _check(True))
    assert _frame_graph(directory) == "frame_int8"
    assert _frame_graph(directory, prefer_int8=False) == "frame"


def test_int8_refused_when_its_check_failed(tmp_path: Path) -> None:
    # a good PSNR recorded at export time does not override the failed check
    directory = _export_with_int8(tmp_path, _check(False), psnr_db=41.0)
    assert _frame_graph(directory) == "frame"


@pytest.mark.parametrize(("psnr_db", "usable"), [(None, False), (20.0, False), (41.0, True)])
def test_exports_without_a_check_fall_back_on_the_export_time_psnr(
    psnr_db: float | None, usable: bool
) -> None:
    manifest = read_manifest(SHIPPED)
    graphs = {**manifest.graphs, "frame_int8": manifest.graphs["frame"]}
    legacy = dataclasses.replace(manifest, graphs=graphs, int8_check=None, int8_psnr_db=psnr_db)
    assert int8_usable(legacy) is usable


def test_no_int8_graph_is_never_usable() -> None:
    manifest: Manifest = read_manifest(SHIPPED)
    graphs = {k: v for k, v in manifest.graphs.items() if k != "frame_int8"}
    assert not int8_usable(dataclasses.replace(manifest, graphs=graphs, int8_check=_check(True)))


def test_the_check_survives_the_manifest_round_trip(tmp_path: Path) -> None:
    directory = _export_with_int8(tmp_path, _check(True))
    assert read_manifest(directory).int8_check == _check(True)


def test_the_verdict_needs_the_mouth_to_move_as_much() -> None:
    from stablesync.export.int8_quality import verdict

    report = {"psnr_db": 41.8, "mouth_opening_r": 0.984, "frames": 300, "inputs": "test"}
    assert verdict({**report, "opening_std_ratio": 0.97}, "").passed
    assert not verdict({**report, "opening_std_ratio": 0.926}, "").passed  # the shipped weights' int8
    assert not verdict({**report, "opening_std_ratio": 0.97, "psnr_db": 30.0}, "").passed


def test_the_shipped_export_lists_int8_only_with_a_passed_check() -> None:
    # the shipped cpu-rt export lists an int8 graph (QAT weights, head and last decoder level in
    # fp32; benchmarks/RESULTS.md, "Shipped: the QAT weights and an int8 graph ...") with its
    # passed check, and the CPU engine runs it by default
    manifest = read_manifest(SHIPPED)
    assert "frame_int8" in manifest.graphs
    assert manifest.int8_check is not None and manifest.int8_check.passed and int8_usable(manifest)
    assert OrtEngine(SHIPPED, manifest).frame_graph == "frame_int8"
