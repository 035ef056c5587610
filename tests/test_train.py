"""Training loops on tiny data: a few steps each, not convergence."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from stablesync import checkpoint
from stablesync.cli import main as cli_main
from stablesync.errors import UserError
from stablesync.models.lipsync import LipSyncModel
from stablesync.models.syncnet import AVSyncNet
from stablesync.train.cli import train
from stablesync.train.config import load_config
from stablesync.train.distributed import DistEnv
from stablesync.train.generator_stage import GeneratorTask, lipsync_config


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def syncnet_toml(data: Path, out: Path, steps: int, kind: str = "avsyncnet") -> str:
    return f"""
stage = "syncnet"
data = "{data}"
out_dir = "{out}"
kind = "{kind}"
[schedule]
steps = {steps}
batch_size = 4
lr = 1e-3
warmup_steps = 2
log_every = 1
val_every = 2
val_batches = 1
checkpoint_every = 2
threads = 1
"""


def generator_toml(stage: str, data: Path, out: Path, syncnet: Path, silent: str, steps: int) -> str:
    return f"""
stage = "{stage}"
data = "{data}"
out_dir = "{out}"
syncnet = "{syncnet}"
silent = "{silent}"
[weights]
sync = 2.0
triplet = 0.5
[schedule]
steps = {steps}
batch_size = 2
warmup_steps = 1
log_every = 1
val_every = 2
val_batches = 1
checkpoint_every = 2
threads = 1
"""


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "a.toml", 'stage = "syncnet"\ndata = "d"\nout_dir = "o"\nbatchsize = 3\n')
    with pytest.raises(UserError, match=r"a\.toml\.batchsize: unknown key"):
        load_config(bad)
    bad = write_config(
        tmp_path / "b.toml", 'stage = "syncnet"\ndata = "d"\nout_dir = "o"\n[schedule]\nlr = "x"\n'
    )
    with pytest.raises(UserError, match=r"schedule\.lr: expected a number"):
        load_config(bad)
    bad = write_config(tmp_path / "c.toml", 'stage = "sync"\n')
    with pytest.raises(UserError, match=r"c\.toml\.stage: expected one of"):
        load_config(bad)
    ok = write_config(tmp_path / "d.toml", 'stage = "syncnet"\ndata = "data"\nout_dir = "out"\n')
    with pytest.raises(UserError, match="asked for 'silent'"):
        load_config(ok, expect_stage="silent")
    _, cfg = load_config(ok)
    assert cfg.data == str(tmp_path / "data")  # relative to the config file


def test_cli_reports_user_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(
        tmp_path / "s.toml", f'stage = "syncnet"\ndata = "{tmp_path / "none"}"\nout_dir = "o"\n'
    )
    assert cli_main(["train", "syncnet", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "not a prepared dataset" in err


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


@pytest.mark.slow
def test_syncnet_trains_checkpoints_and_resumes_exactly(random_prepared: Path, tmp_path: Path) -> None:
    straight = write_config(tmp_path / "a.toml", syncnet_toml(random_prepared, tmp_path / "a", 4))
    stage, cfg = load_config(straight)
    summary = train(stage, cfg, resume=False)
    out = tmp_path / "a"
    for name in (
        "state.safetensors",
        "last.safetensors",
        "best.safetensors",
        "log.csv",
        "curves.png",
        "best.json",
        "config.json",
        "checkpoints/step-00000002.safetensors",
    ):
        assert (out / name).is_file(), name
    assert summary["step"] == 4
    model, _ = checkpoint.load(out / "last.safetensors", expect_arch="avsyncnet")
    assert sum(p.numel() for p in model.parameters()) > 0
    log = (out / "log.csv").read_text().splitlines()
    assert log[0] == "step,phase,name,value" and any(",val,accuracy," in r for r in log)

    # the same run cut at step 2 and resumed gives the same weights (model, optimiser, RNG restored)
    stage, half = load_config(
        write_config(tmp_path / "b2.toml", syncnet_toml(random_prepared, tmp_path / "b", 2))
    )
    train(stage, half, resume=False)
    with pytest.raises(UserError, match="--resume"):
        train(stage, half, resume=False)
    stage, full = load_config(
        write_config(tmp_path / "b4.toml", syncnet_toml(random_prepared, tmp_path / "b", 4))
    )
    train(stage, full, resume=True)
    a, b = _weights(out / "last.safetensors"), _weights(tmp_path / "b" / "last.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    rows = (tmp_path / "b" / "log.csv").read_text().splitlines()
    assert sum(r.startswith("3,train,bce,") for r in rows) == 1  # no duplicate rows after resume

    # resumed with another batch size, the validation set differs: the best restarts there
    bigger = syncnet_toml(random_prepared, tmp_path / "b", 6).replace("batch_size = 4", "batch_size = 2")
    stage, other = load_config(write_config(tmp_path / "b6.toml", bigger))
    state = tmp_path / "b" / "state.safetensors"
    with safe_open(str(state), "pt") as f:
        meta = f.metadata()
    info = json.loads(meta["info"])
    meta["info"] = json.dumps({**info, "best_score": -1e9})  # unbeatable on the old validation set
    save_file(load_file(str(state)), str(state), metadata=meta)
    train(stage, other, resume=True)
    assert json.loads((tmp_path / "b" / "best.json").read_text())["step"] == 6


@pytest.mark.slow
def test_three_stages_in_order(random_prepared: Path, tmp_path: Path) -> None:
    stage, cfg = load_config(
        write_config(tmp_path / "s.toml", syncnet_toml(random_prepared, tmp_path / "sn", 2))
    )
    train(stage, cfg, resume=False)
    syncnet = tmp_path / "sn" / "last.safetensors"
    text = generator_toml("silent", random_prepared, tmp_path / "gs", syncnet, "", 2)
    stage, cfg = load_config(write_config(tmp_path / "gs.toml", text))
    train(stage, cfg, resume=False)
    silent = tmp_path / "gs" / "last.safetensors"
    text = generator_toml("generator", random_prepared, tmp_path / "gl", syncnet, str(silent), 2)
    stage, cfg = load_config(write_config(tmp_path / "gl.toml", text))
    summary = train(stage, cfg, resume=False)
    assert set(summary["last_val"]) >= {"l1", "psnr", "ssim", "sim_gap", "score"}  # type: ignore[arg-type]

    final, _ = checkpoint.load(tmp_path / "gl" / "last.safetensors", expect_arch="lipsync")
    gs, _ = checkpoint.load(silent, expect_arch="lipsync")
    sn, _ = checkpoint.load(syncnet, expect_arch="avsyncnet")
    fs, gss, sns = final.state_dict(), gs.state_dict(), sn.state_dict()
    # G_S frozen in stage 3; the audio encoder is AVSyncNet's, frozen through both generator stages
    for k, v in gss.items():
        if k.startswith("silent."):
            torch.testing.assert_close(fs[k], v, rtol=0, atol=0)
    for k, v in sns.items():
        if k.startswith("audio_encoder."):
            torch.testing.assert_close(fs[k], v, rtol=0, atol=0)
    # G_L started from G_S's weights (init_from_silent) and moved away from them
    talker = [k for k in fs if k.startswith("talker.") and fs[k].is_floating_point()]
    assert any(not torch.equal(fs[k], gss["silent." + k[len("talker.") :]]) for k in talker)
    meta = checkpoint.read_metadata(tmp_path / "gl" / "last.safetensors")
    assert meta["stage"] == "generator" and meta["use_silent"] == "true"
    logged = {r.split(",")[2] for r in (tmp_path / "gl" / "log.csv").read_text().splitlines()[1:]}
    assert {"sync", "triplet", "gan", "pixel", "sim_gap"} <= logged
    info = json.loads((tmp_path / "gl" / "best.json").read_text())
    assert info["step"] in (2,)


@pytest.mark.slow
def test_without_adversarial_terms_the_discriminator_rests(random_prepared: Path, tmp_path: Path) -> None:
    stage, cfg = load_config(
        write_config(tmp_path / "s.toml", syncnet_toml(random_prepared, tmp_path / "sn", 2))
    )
    train(stage, cfg, resume=False)
    text = generator_toml(
        "silent", random_prepared, tmp_path / "gs", tmp_path / "sn" / "last.safetensors", "", 1
    )
    moved = {}
    for name, weights in (("paper", ""), ("no_gan", "gan = 0.0\nfeature_matching = 0.0\n")):
        _, cfg = load_config(
            write_config(tmp_path / f"{name}.toml", text.replace("[weights]\n", "[weights]\n" + weights))
        )
        task = GeneratorTask(cfg, "silent", DistEnv())  # type: ignore[arg-type]
        disc0 = {k: v.clone() for k, v in task.disc.state_dict().items()}
        net0 = {k: v.clone() for k, v in task.net.state_dict().items()}
        logs = task.train_step(np.random.default_rng(0), 0)
        disc_moved = any(not torch.equal(v, disc0[k]) for k, v in task.disc.state_dict().items())
        net_moved = any(not torch.equal(v, net0[k]) for k, v in task.net.state_dict().items())
        moved[name] = (disc_moved, net_moved, "gan" in logs and "feature_matching" in logs)
    assert moved == {"paper": (True, True, True), "no_gan": (False, True, False)}


@pytest.mark.slow
def test_fine_tuning_adopts_the_audio_encoder_and_starts_from_the_checkpoint(
    random_prepared: Path, tmp_path: Path
) -> None:
    # a "shipped" lipsync checkpoint, stored in fp16 as the shipped weights are
    shipped = tmp_path / "shipped.safetensors"
    cfg32, _ = lipsync_config("cpu-rt", 32)
    torch.manual_seed(3)
    checkpoint.save(shipped, LipSyncModel(cfg32), cfg32, dtype=torch.float16)
    src = LipSyncModel(cfg32)
    src.load_state_dict(checkpoint.load(shipped, expect_arch="lipsync")[0].state_dict())

    adopt = f'audio_encoder = "{shipped}"\n[schedule]'
    text = syncnet_toml(random_prepared, tmp_path / "sn", 4).replace("[schedule]", adopt)
    stage, cfg = load_config(write_config(tmp_path / "s.toml", text))
    assert cfg.audio_encoder == str(shipped)
    train(stage, cfg, resume=False)
    sn, _ = checkpoint.load(tmp_path / "sn" / "last.safetensors", expect_arch="avsyncnet")
    for k, v in src.audio_encoder.state_dict().items():  # taken over, frozen (batch norm too)
        torch.testing.assert_close(sn.audio_encoder.state_dict()[k], v, rtol=0, atol=0, msg=k)
    early, _ = checkpoint.load(tmp_path / "sn" / "checkpoints" / "step-00000002.safetensors")
    assert isinstance(early, AVSyncNet)
    pairs = zip(sn.visual_encoder.parameters(), early.visual_encoder.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)  # the visual encoder learns (steps 2 -> 4)

    syncnet = tmp_path / "sn" / "last.safetensors"
    gl = generator_toml("generator", random_prepared, tmp_path / "gl", syncnet, str(shipped), 2)
    stage, cfg = load_config(write_config(tmp_path / "gl.toml", _with_init(gl, shipped)))
    task = GeneratorTask(cfg, "generator", DistEnv())  # type: ignore[arg-type]
    for k, v in src.talker.state_dict().items():  # G_L starts as the checkpoint's G_L, not its G_S
        torch.testing.assert_close(task.model.talker.state_dict()[k], v, rtol=0, atol=0, msg=k)

    other = tmp_path / "other.safetensors"
    checkpoint.save(other, LipSyncModel(cfg32), cfg32)  # another audio encoder
    stage, cfg = load_config(write_config(tmp_path / "bad.toml", _with_init(gl, other)))
    with pytest.raises(UserError, match="its audio encoder is not the one of"):
        GeneratorTask(cfg, "generator", DistEnv())  # type: ignore[arg-type]
    not_a_checkpoint = f'audio_encoder = "{tmp_path / "sn" / "log.csv"}"\n[schedule]'
    bad = syncnet_toml(random_prepared, tmp_path / "sn2", 2).replace("[schedule]", not_a_checkpoint)
    stage, cfg = load_config(write_config(tmp_path / "s2.toml", bad))
    with pytest.raises(UserError, match="not a readable safetensors"):
        train(stage, cfg, resume=False)


def _with_init(toml: str, init: Path) -> str:
    return toml.replace("[weights]", f'init = "{init}"\n[weights]')


def test_every_committed_config_parses() -> None:
    configs = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.toml"))
    assert len(configs) >= 9
    for path in configs:
        _, cfg = load_config(path)
        assert Path(cfg.data).is_absolute(), path


def test_cross_sync_drives_half_the_batch_with_the_next_items_speech(
    random_prepared: Path, tmp_path: Path
) -> None:
    """`weights.cross_sync`: items 0 .. B/2-1 are generated from items 1 .. B/2's audio and judged
    against those items' sync windows; the own audio of the driven items and that of the rest
    of the batch play no part."""
    stage, cfg = load_config(
        write_config(tmp_path / "s.toml", syncnet_toml(random_prepared, tmp_path / "sn", 1))
    )
    train(stage, cfg, resume=False)
    text = generator_toml(
        "generator", random_prepared, tmp_path / "gl", tmp_path / "sn" / "last.safetensors", "", 1
    )
    text = text.replace("[weights]\n", "use_silent = false\n[weights]\ncross_sync = 2.0\n")
    text = text.replace("batch_size = 2", "batch_size = 4")
    _, cfg = load_config(write_config(tmp_path / "gl.toml", text))
    task = GeneratorTask(cfg, "generator", DistEnv())  # type: ignore[arg-type]
    assert task.cfg.weights.cross_sync == 2.0
    task.net.eval()  # batch statistics aside: the same inputs give the same term
    x = task._inputs(task._draw(task.train_data, np.random.default_rng(0), "train"))

    def term_with_noise_on(key: str, item: int) -> float:
        value = x[key].clone()
        rows = value.view(4, -1)  # item by item: its n frames' audio, or its sync window
        rows[item] += torch.randn_like(rows[item])
        with torch.no_grad():
            return float(task._cross_sync_term({**x, key: value}))

    with torch.no_grad():
        base = float(task._cross_sync_term(x))
    for key in ("audio", "sync_mels"):
        changed = {item: term_with_noise_on(key, item) != base for item in range(4)}
        assert changed == {0: False, 1: True, 2: True, 3: False}, key
    logs = task.train_step(np.random.default_rng(1), 0)
    assert "cross_sync" in logs and np.isfinite(logs["cross_sync"])
