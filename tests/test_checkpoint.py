import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

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


@pytest.mark.slow
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


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save interrupted half way (a crash, a full disk) leaves the previous checkpoint whole, and
    a reader during the write sees the previous checkpoint, never a partial file."""
    cfg = get_preset("cpu-rt").syncnet
    target = tmp_path / "s.safetensors"
    checkpoint.save(target, AVSyncNet(cfg), cfg, extra={"stage": "old"})
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]
    previous = target.read_bytes()
    write_whole = checkpoint.save_file
    read_during_write: list[bytes] = []

    def write_half_then_fail(
        tensors: dict[str, torch.Tensor], filename: str, metadata: dict[str, str]
    ) -> None:
        write_whole(tensors, filename, metadata=metadata)
        written = Path(filename)
        written.write_bytes(written.read_bytes()[: written.stat().st_size // 2])
        read_during_write.append(target.read_bytes())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        checkpoint.save(target, AVSyncNet(cfg), cfg, extra={"stage": "new"})
    assert read_during_write == [previous]
    assert target.read_bytes() == previous and checkpoint.read_metadata(target)["stage"] == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["s.safetensors"]  # no partial file left behind


def test_every_older_format_has_a_migration() -> None:
    assert all(n in checkpoint.MIGRATIONS for n in range(1, checkpoint.FORMAT_VERSION))


def _video_to_visual(tensors: checkpoint.StateDict) -> checkpoint.StateDict:
    return {k.replace("video_encoder.", "visual_encoder.", 1): v for k, v in tensors.items()}


def _frames_to_n_frames(meta: dict[str, str]) -> dict[str, str]:
    config = json.loads(meta["config"])
    config["visual"]["n_frames"] = config["visual"].pop("frames")
    return {**meta, "config": json.dumps(config)}


def test_older_formats_are_migrated_and_newer_ones_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A synthetic history: format 1 named the visual encoder's weights "video_encoder.*", format
    2 named the config's "n_frames" "frames"; the code reads format 3."""
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 3)
    monkeypatch.setattr(
        checkpoint,
        "MIGRATIONS",
        {
            1: checkpoint.Migration(tensors=_video_to_visual),
            2: checkpoint.Migration(metadata=_frames_to_n_frames),
        },
    )
    cfg = get_preset("cpu-rt").syncnet
    torch.manual_seed(4)
    model = AVSyncNet(cfg).eval()
    current = checkpoint.save(tmp_path / "v3.safetensors", model, cfg, extra={"stage": "syncnet"})
    meta = checkpoint.read_metadata(current)
    assert meta["format_version"] == "3"
    old_config = json.loads(meta["config"])
    old_config["visual"]["frames"] = old_config["visual"].pop("n_frames")
    old_tensors = {
        k.replace("visual_encoder.", "video_encoder.", 1): v for k, v in model.state_dict().items()
    }
    v1 = tmp_path / "v1.safetensors"
    save_file(
        old_tensors, str(v1), metadata={**meta, "format_version": "1", "config": json.dumps(old_config)}
    )

    migrated = checkpoint.read_metadata(v1)  # the current format's metadata
    assert json.loads(migrated.pop("config")) == json.loads(meta["config"])
    assert migrated == {k: v for k, v in meta.items() if k != "config"}
    loaded, loaded_cfg = checkpoint.load(v1, expect_arch="avsyncnet")
    assert loaded_cfg == cfg
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    v2 = tmp_path / "v2.safetensors"  # format 2: weights already renamed, config not yet
    save_file(
        model.state_dict(),
        str(v2),
        metadata={**meta, "format_version": "2", "config": json.dumps(old_config)},
    )
    assert checkpoint.load(v2)[1] == cfg
    resaved = checkpoint.save(tmp_path / "resaved.safetensors", loaded, loaded_cfg)
    assert checkpoint.read_metadata(resaved)["format_version"] == "3"

    newer = tmp_path / "v4.safetensors"
    save_file(model.state_dict(), str(newer), metadata={**meta, "format_version": "4"})
    with pytest.raises(UserError, match=r"v4\.safetensors: checkpoint format 4 is newer") as exc:
        checkpoint.load(newer)
    assert "\n" not in str(exc.value)
    monkeypatch.setattr(checkpoint, "MIGRATIONS", {2: checkpoint.MIGRATIONS[2]})  # history lost
    with pytest.raises(UserError, match=r"format 1 is older than this stablesync reads \(from format 2\)"):
        checkpoint.load(v1)
    assert checkpoint.load(v2)[1] == cfg


@pytest.mark.slow
def test_average_is_the_mean_of_one_runs_checkpoints(tmp_path: Path) -> None:
    cfg = get_preset("cpu-rt").syncnet
    models = []
    paths = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        m = AVSyncNet(cfg)
        m.train()
        with torch.no_grad():  # batch-norm statistics and step counters differ too
            for _ in range(seed):
                m.visual_encoder(torch.rand(2, 5, 3, 96, 96))
        models.append(m)
        path = tmp_path / f"step-{seed}.safetensors"
        paths.append(checkpoint.save(path, m, cfg, extra={"stage": "syncnet"}))
    out = checkpoint.average(paths, tmp_path / "avg.safetensors")
    avg, avg_cfg = checkpoint.load(out, expect_arch="avsyncnet")
    assert avg_cfg == cfg
    states = [m.state_dict() for m in models]
    floats = 0
    counters: list[int] = []
    for key, value in avg.state_dict().items():
        if value.is_floating_point():
            floats += 1
            expected = sum(s[key].double() for s in states) / 3
            torch.testing.assert_close(value.double(), expected, rtol=0, atol=1e-6)
        else:
            assert torch.equal(value, states[-1][key])
            counters.append(int(value))
    assert floats > 10 and max(counters) == 3  # the last's counters, not a mean (2)
    meta = checkpoint.read_metadata(out)
    assert meta["stage"] == "syncnet" and "step-3.safetensors" in meta["averaged_from"]


def test_average_refuses_one_checkpoint_and_checkpoints_of_different_runs(tmp_path: Path) -> None:
    cfg = get_preset("cpu-rt").syncnet
    a = checkpoint.save(tmp_path / "a.safetensors", AVSyncNet(cfg), cfg, extra={"stage": "syncnet"})
    b = checkpoint.save(tmp_path / "b.safetensors", AVSyncNet(cfg), cfg, extra={"stage": "other"})
    lip_cfg = get_preset("cpu-rt").lipsync
    c = checkpoint.save(tmp_path / "c.safetensors", LipSyncModel(lip_cfg), lip_cfg)
    with pytest.raises(UserError, match="expected at least two"):
        checkpoint.average([a], tmp_path / "out.safetensors")
    for other, what in ((b, "stage"), (c, "arch")):
        with pytest.raises(UserError, match=what) as exc:
            checkpoint.average([a, other], tmp_path / "out.safetensors")
        assert "\n" not in str(exc.value)
    assert not (tmp_path / "out.safetensors").exists()


def test_average_command_writes_the_checkpoint_and_reports_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stablesync.cli import main

    cfg = get_preset("cpu-rt").syncnet
    a = checkpoint.save(tmp_path / "a.safetensors", AVSyncNet(cfg), cfg)
    b = checkpoint.save(tmp_path / "b.safetensors", AVSyncNet(cfg), cfg)
    assert main(["average", str(a), str(b), "--out", str(tmp_path / "avg.safetensors")]) == 0
    assert checkpoint.load(tmp_path / "avg.safetensors")[1] == cfg
    assert main(["average", str(a), str(tmp_path / "none.safetensors"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "none.safetensors" in err and "not found" in err
