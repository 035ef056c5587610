"""Evaluation: the metrics on known inputs, and `stablesync eval` end to end on tiny data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from stablesync import checkpoint
from stablesync.cli import main as cli_main
from stablesync.evaluation import images, mouth
from stablesync.evaluation.run import REPORT_KEYS
from stablesync.evaluation.sync import MAX_OFFSET, fluctuation, sync_scores
from stablesync.models import get_preset
from stablesync.models.lipsync import LipSyncModel
from stablesync.models.syncnet import AVSyncNet
from stablesync.train.data import PreparedData, to_chw
from stablesync.train.generator_stage import lipsync_config


def small_syncnet() -> AVSyncNet:
    cfg = get_preset("cpu-rt").syncnet
    return AVSyncNet(dataclasses.replace(cfg, visual=dataclasses.replace(cfg.visual, image_size=32)))


def test_image_metrics() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    assert images.psnr(a, a) == pytest.approx(100.0)
    assert images.ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a.astype(int) + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    assert 25 < images.psnr(noisy, a) < 45
    noisier = np.clip(a.astype(int) + rng.integers(-60, 61, a.shape), 0, 255).astype(np.uint8)
    assert images.ssim(noisier, a) < images.ssim(noisy, a) < 1.0


def test_mouth_measures_on_a_real_face() -> None:
    from skimage.data import astronaut

    from stablesync.face import CropAlignment, FaceMeshTracker, align_crop

    img = astronaut()
    with FaceMeshTracker(video=False) as tracker:
        face = tracker.detect(img)[0]
    crop = align_crop(img, CropAlignment.from_landmarks(face.points, 96))
    lm = mouth.CropLandmarks()
    try:
        pts = lm(np.stack([crop, np.zeros_like(crop)]))
    finally:
        lm.close()
    assert not np.isnan(pts[0]).any() and np.isnan(pts[1]).all()  # a face, and no face
    assert 0.6 * 96 < np.nanmean(pts[0, list(mouth.MOUTH_OUTER), 1]) < 0.85 * 96  # the mouth sits at ~0.72 S
    assert mouth.lmd(pts[:1], pts[:1], 96) == 0.0
    op = mouth.openings(pts)
    assert op[0] >= 0 and np.isnan(op[1])
    t = np.linspace(0, 1, 20)
    assert mouth.correlation(t, 2 * t + 1) == pytest.approx(1.0)
    assert np.isnan(mouth.correlation(t, np.ones(20)))


def test_sync_scores_protocol(random_prepared: Path) -> None:
    torch.manual_seed(0)
    data = PreparedData(random_prepared, "test")
    cfg = get_preset("cpu-rt").syncnet
    net = AVSyncNet(
        type(cfg)(audio=cfg.audio, visual=type(cfg.visual)(**{**cfg.visual.__dict__, "image_size": 32}))
    )
    clip = data.clips[0]
    s = sync_scores(net, torch.from_numpy(to_chw(np.asarray(clip.frames))), clip.mel, clip.fps, data.mel_cfg)
    assert s.mean_distance.shape == (2 * MAX_OFFSET + 1,)
    assert s.lse_d == pytest.approx(s.mean_distance.min())
    assert s.lse_c == pytest.approx(np.median(s.mean_distance) - s.mean_distance.min())
    assert -MAX_OFFSET <= s.offset <= MAX_OFFSET and 0 <= s.lse_d <= 2
    assert len(s.cosines) == clip.n_frames - 4
    f = fluctuation(np.array([0.5, 0.7, 0.5]))
    assert f["cos_mean_abs_diff"] == pytest.approx(0.2)


@pytest.mark.slow
def test_eval_cli_writes_the_report(random_prepared: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg, _ = lipsync_config("cpu-rt", 32)
    model = LipSyncModel(cfg)
    net = small_syncnet()
    checkpoint.save(tmp_path / "model.safetensors", model, cfg)
    checkpoint.save(tmp_path / "syncnet.safetensors", net, net.cfg)
    out = tmp_path / "r" / "report.json"
    code = cli_main(
        ["eval", "--checkpoint", str(tmp_path / "model.safetensors"), "--data", str(random_prepared),
         "--out", str(out), "--threads", "1"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    for key in REPORT_KEYS:
        assert key in report
    # keep_visible (the presets'): the upper half is exact, so the crop's error is the lower half's / 2
    assert report["psnr"] == pytest.approx(report["psnr_lower"] + 10 * np.log10(2), abs=0.05)
    assert report["clips"] == 2 and report["split"] == "test"
    assert report["lookahead_ms"] == cfg.lookahead_ms  # the model's unless --lookahead-ms
    assert 0 <= report["offset_accuracy"] <= 1 and np.isfinite(report["psnr"])
    gt = report["ground_truth"]
    assert gt["ssim"] == 1.0 and gt["lmd"] == 0.0 and np.isfinite(gt["lse_c"])
    assert len(report["per_clip"]) == 2
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "model.safetensors"), "--data",
                     str(random_prepared), "--out", str(out), "--lookahead-ms", "500"]) == 2  # fmt: skip
    # a missing AVSyncNet is a one-line user error
    (tmp_path / "syncnet.safetensors").unlink()
    assert cli_main(["eval", "--checkpoint", str(tmp_path / "model.safetensors"), "--data",
                     str(random_prepared), "--out", str(out)]) == 2  # fmt: skip
