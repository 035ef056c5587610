from pathlib import Path

import pytest
import torch

from stablesync import checkpoint
from stablesync.errors import UserError
from stablesync.models import AVSyncNet, LipSyncModel, get_preset


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return (
        torch.rand(2, 3, 96, 96, generator=g),
        torch.rand(2, 3, 96, 96, generator=g),
        torch.randn(2, 1, 80, 16, generator=g),
    )


def test_round_trip_reproduces_outputs_exactly(tmp_path: Path) -> None:
    cfg = get_preset("cpu-rt").lipsync
    model = LipSyncModel(cfg).eval()
    path = checkpoint.save(tmp_path / "g.safetensors", model, cfg)
    loaded, loaded_cfg = checkpoint.load(path, expect_arch="lipsync")
    assert loaded_cfg == cfg
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(model(*_inputs()), loaded(*_inputs()))
    assert not any(p.requires_grad for p in loaded.audio_encoder.parameters())  # type: ignore[union-attr]


def test_half_precision_shipping_loads_as_float32(tmp_path: Path) -> None:
    cfg = get_preset("cpu-rt").syncnet
    model = AVSyncNet(cfg)
    path = checkpoint.save(tmp_path / "s.safetensors", model, cfg, dtype=torch.float16)
    loaded, _ = checkpoint.load(path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert path.stat().st_size < sum(p.numel() for p in model.parameters()) * 3


def test_missing_truncated_foreign_and_wrong_arch_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found") as exc:
        checkpoint.load(tmp_path / "none.safetensors")
    assert "\n" not in str(exc.value)

    cfg = get_preset("cpu-rt").syncnet
    good = checkpoint.save(tmp_path / "s.safetensors", AVSyncNet(cfg), cfg)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=r"truncated\.safetensors") as exc:
        checkpoint.load(truncated)
    assert "\n" not in str(exc.value)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match=r"garbage\.safetensors"):
        checkpoint.load(garbage)

    with pytest.raises(UserError, match="expected lipsync"):
        checkpoint.load(good, expect_arch="lipsync")

    header = bytearray(data)
    header[8:40] = b"{" * 32  # broken JSON header
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(bytes(header))
    with pytest.raises(UserError, match=r"broken\.safetensors") as exc:
        checkpoint.load(broken)
    assert "\n" not in str(exc.value)


def test_save_is_atomic(tmp_path: Path) -> None:
    cfg = get_preset("cpu-rt").syncnet
    target = tmp_path / "s.safetensors"
    checkpoint.save(target, AVSyncNet(cfg), cfg)
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]
