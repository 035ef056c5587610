"""Bad export artifacts and unavailable backends give one-line UserErrors naming the file."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from stablesync.errors import UserError
from stablesync.export import load_engine
from stablesync.export.manifest import MANIFEST_FILE, read_manifest, sha256_file

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture
def export_copy(cpu_rt_export: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(cpu_rt_export, out)
    return out


def _edit_manifest(directory: Path, **changes: object) -> None:
    path = directory / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _error(directory: Path, backend: str = "ort-cpu") -> str:
    with pytest.raises(UserError) as info:
        load_engine(directory, backend)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_directory_and_manifest(tmp_path: Path) -> None:
    assert "export directory not found" in _error(tmp_path / "nowhere")
    assert f"{tmp_path / MANIFEST_FILE}: not found" in _error(tmp_path)


def test_corrupt_manifest(export_copy: Path) -> None:
    (export_copy / MANIFEST_FILE).write_text('{"manifest_version": 1, "preset": ')
    assert f"{export_copy / MANIFEST_FILE}: not readable JSON" in _error(export_copy)


def test_manifest_of_another_version(export_copy: Path) -> None:
    _edit_manifest(export_copy, manifest_version=99)
    assert "manifest_version 99, expected 1" in _error(export_copy)


def test_manifest_with_a_bad_key(export_copy: Path) -> None:
    _edit_manifest(export_copy, image_size="96")
    assert "image_size: expected an integer" in _error(export_copy)


def test_missing_graph(export_copy: Path) -> None:
    (export_copy / "frame.onnx").unlink()
    assert f"{export_copy / 'frame.onnx'}: graph 'frame' listed in manifest.json is missing" in _error(
        export_copy
    )


def test_truncated_graph(export_copy: Path) -> None:
    path = export_copy / "reference.onnx"
    path.write_bytes(path.read_bytes()[:1000])
    message = _error(export_copy)
    assert str(path) in message and "sha256" in message


def test_unreadable_graph_with_matching_checksum(export_copy: Path) -> None:
    path = export_copy / "frame.onnx"
    path.write_bytes(b"not a protobuf at all")
    graphs = json.loads((export_copy / MANIFEST_FILE).read_text())["graphs"]
    graphs["frame"]["sha256"] = sha256_file(path)
    _edit_manifest(export_copy, graphs=graphs)
    assert f"{path}: onnxruntime cannot load it" in _error(export_copy)


def test_input_size_different_from_the_preset(export_copy: Path) -> None:
    _edit_manifest(export_copy, image_size=128)
    message = _error(export_copy)
    assert "reference.onnx" in message and "[3, 96, 96]" in message and "[3, 128, 128]" in message


def test_graph_from_another_preset(export_copy: Path) -> None:
    path = export_copy / "frame.onnx"
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "stablesync.preset":
            prop.value = "paper"
    onnx.save(model, str(path))
    graphs = json.loads((export_copy / MANIFEST_FILE).read_text())["graphs"]
    graphs["frame"]["sha256"] = sha256_file(path)
    _edit_manifest(export_copy, graphs=graphs)
    assert f"{path}: graph exported for preset 'paper', manifest.json says 'cpu-rt'" in _error(export_copy)


def test_torch_backend_rejects_other_weights(export_copy: Path) -> None:
    _edit_manifest(export_copy, weights_sha256="0" * 64)
    message = _error(export_copy, "torch")
    assert "lipsync.safetensors" in message and "checksum" in message


def test_unknown_and_unavailable_backends(cpu_rt_export: Path) -> None:
    assert "expected auto or one of" in _error(cpu_rt_export, "tpu")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert "install the `gpu` extra" in _error(cpu_rt_export, "ort-cuda")
    if not HAS_TENSORRT:
        assert "TensorRT is not installed" in _error(cpu_rt_export, "tensorrt")


def test_manifest_round_trip(cpu_rt_export: Path) -> None:
    m = read_manifest(cpu_rt_export)
    assert m.graphs["frame"].sha256 == sha256_file(cpu_rt_export / "frame.onnx")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stablesync", "export", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    res = _cli("--checkpoint", str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "checkpoint not found" in res.stderr
    res = _cli("--random-init", "--preset", "nope", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "preset 'nope': unknown" in res.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(HAS_TENSORRT, reason="TensorRT is installed here")
def test_cli_tensorrt_missing_says_how_to_install(tmp_path: Path) -> None:
    res = _cli("--random-init", "--tensorrt", "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "TensorRT is not installed" in res.stderr and "stablesync[gpu]" in res.stderr


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAS_TENSORRT, reason="TensorRT is not installed")
def test_tensorrt_engine_matches_onnxruntime(cpu_rt_export: Path, tmp_path: Path) -> None:
    import numpy as np

    out = tmp_path / "trt"
    shutil.copytree(cpu_rt_export, out)
    engine = load_engine(out, "tensorrt")
    reference = load_engine(out, "ort-cpu")
    rng = np.random.default_rng(0)
    for batch in (1, 4):
        images = rng.random((batch, 3, 96, 96), dtype=np.float32)
        frames = rng.random((batch, 3, 96, 96), dtype=np.float32)
        mels = rng.uniform(-4, 4, (batch, 1, 80, 16)).astype(np.float32)
        feats = reference.encode_reference(images)
        got = engine.generate(feats, frames, mels)
        assert np.abs(got - reference.generate(feats, frames, mels)).max() < 2e-2  # fp16 engine
    assert list((out / "tensorrt").glob("frame-*.engine")), "engine not cached"
    again = load_engine(out, "tensorrt")  # second start: loads the cached engine
    assert again.generate(feats, frames, mels).shape == (4, 3, 96, 96)
