"""Typed training configs, one dataclass per stage, read from TOML with one-line errors.

A config file holds a top-level `stage` key ("syncnet", "silent" or "generator") and the keys
of that stage's dataclass; `stablesync.typed_config.from_dict` names any unknown key, missing
key or wrong type. Paths in a config are relative to the config file's folder unless absolute.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from stablesync.errors import UserError
from stablesync.typed_config import from_dict

Stage = Literal["syncnet", "silent", "generator"]
STAGES: tuple[Stage, ...] = ("syncnet", "silent", "generator")


@dataclass(frozen=True)
class Schedule:
    """Steps, batch, optimiser and bookkeeping shared by every stage.

    The learning rate is a pure function of the step (linear warm-up, then cosine decay to
    `lr * final_lr_fraction`), so resuming at a step restores the scheduler exactly.
    """

    steps: int = 1000
    batch_size: int = 8
    lr: float = 2e-4
    warmup_steps: int = 50
    final_lr_fraction: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    seed: int = 0
    log_every: int = 10
    val_every: int = 100
    val_batches: int = 4
    checkpoint_every: int = 100
    threads: int = 0  # torch intra-op threads per process; 0 leaves torch's default

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "val_every", "val_batches", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclass(frozen=True)
class SyncNetStage:
    """AVSyncNet: BCE on the cosine; negatives are non-overlapping windows of the same clip.

    `kind = "wav2lip"` trains the small Wav2Lip-style SyncNet baseline of the ablation instead
    (same data, same loss), used only to compare cosine fluctuation.
    `audio_encoder`: a lipsync or AVSyncNet checkpoint whose audio encoder this AVSyncNet takes
    over, frozen, so that only the visual encoder learns. It rebuilds a sync expert in the audio
    space of generators that already exist (the shipped weights carry only the audio encoder).
    """

    data: str
    out_dir: str
    preset: str = "cpu-rt"
    kind: Literal["avsyncnet", "wav2lip"] = "avsyncnet"
    negative_fraction: float = 0.5
    audio_encoder: str = ""
    schedule: Schedule = field(default_factory=Schedule)


@dataclass(frozen=True)
class LossWeights:
    """L = gan L_GAN + pixel L_pixel + perceptual L_perceptual + sync L_sync + triplet L_at.

    The paper's weights are the defaults (perceptual = our stand-in: 1 - SSIM plus feature
    matching on the discriminator's layers, `feature_matching` scales the latter).
    """

    gan: float = 1.0
    pixel: float = 10.0
    perceptual: float = 1.0
    feature_matching: float = 1.0
    sync: float = 2.0
    triplet: float = 0.5
    # the sync term again, on half the batch's frames driven by other items' audio (rolled by
    # one), for fine-tuning on one short take, where G_L can learn to tell the moment from the
    # upper face rather than follow the speech; 0: off
    cross_sync: float = 0.0


@dataclass(frozen=True)
class GeneratorStage:
    """G_S (`stage = "silent"`) or G_L (`stage = "generator"`).

    Both: pose = the target frame (its lower half masked inside the model), audio = the
    target's mel window through the frozen AVSyncNet audio encoder, target = that frame.
    G_S: identity = a random frame of the clip; GAN + pixel + perceptual only, never a sync
    loss. At use time it is fed the silent mel and gives the closed, neutral mouth it learnt
    from the pauses of the training audio.
    G_L: identity = a random frame of the clip passed through the frozen G_S (`use_silent`;
    false = the raw frame, ablation (a)); sync loss on `sync_frames` consecutive generated
    frames with AVSyncNet (`sync_loss` "stabilized" = L_ss, "plain" = Wav2Lip's -log sim,
    "none"), adaptive triplet loss (weight `weights.triplet`, 0 disables it). With
    `init_from_silent`, G_L's weights start as a copy of the trained G_S (a decision for our
    CPU budget; the paper does not say how G_L is initialised).
    `silence_fraction`: the share of training and validation windows drawn among those whose
    audio is silent (0 = as they come, ~17% on the synthetic corpus). G_S is only ever used
    with silent audio, so it gains most from seeing more of it.
    `init`: a lipsync checkpoint whose U-Net of this stage (G_S for "silent", G_L for
    "generator") the run starts from instead of fresh weights (or, for G_L, of `silent`'s G_S):
    fine-tuning shipped weights. Its audio encoder must be the AVSyncNet's (`syncnet`).
    `fake_quant`: quantisation-aware fine-tuning for the int8 frame graph (`stablesync.train.fake_quant`);
    `fake_quant_fp32`: G_L's parts the int8 graph keeps in fp32 (`"head"`: the last convolution,
    the sigmoid and the mix, as `export.quantize --keep-fp32` with the tail's node names), left
    without fake quantisation, so training sees the graph that will be exported.
    """

    data: str
    out_dir: str
    syncnet: str  # trained AVSyncNet checkpoint (its audio encoder is frozen into the model)
    preset: str = "cpu-rt"
    silent: str = ""  # G_L only: trained G_S (lipsync checkpoint of the silent stage)
    init: str = ""  # lipsync checkpoint to start this stage's U-Net from
    use_silent: bool = True
    init_from_silent: bool = True  # G_L starts from G_S's weights (same U-Net): far fewer steps on CPU
    sync_loss: Literal["stabilized", "plain", "none"] = "stabilized"
    gan_kind: Literal["lsgan", "hinge"] = "lsgan"
    disc_lr: float = 2e-4
    sync_frames: int = 5
    silence_fraction: float = 0.0
    fake_quant: bool = False  # G_L and its audio encoder see int8 rounding (stablesync.train.fake_quant)
    fake_quant_fp32: tuple[Literal["head"], ...] = ()  # G_L's parts left in fp32 under fake_quant
    weights: LossWeights = field(default_factory=LossWeights)
    schedule: Schedule = field(default_factory=Schedule)

    def __post_init__(self) -> None:
        if not 0.0 <= self.silence_fraction <= 1.0:
            raise ValueError("silence_fraction must be within [0, 1]")


StageConfig = SyncNetStage | GeneratorStage


def _resolve(base: Path, value: str) -> str:
    if not value:
        return value
    p = Path(value).expanduser()
    return os.path.normpath(p if p.is_absolute() else (base / p))


def parse_config(data: dict[str, Any], where: str, base: Path) -> tuple[Stage, StageConfig]:
    """A TOML table -> (stage, typed config) with paths resolved against `base`."""
    body = dict(data)
    stage = body.pop("stage", None)
    if stage not in STAGES:
        raise UserError(f"{where}.stage: expected one of {list(STAGES)}, got {stage!r}")
    cfg: StageConfig
    if stage == "syncnet":
        cfg = from_dict(SyncNetStage, body, where)
        paths = {k: _resolve(base, getattr(cfg, k)) for k in ("data", "out_dir", "audio_encoder")}
        cfg = SyncNetStage(**{**cfg.__dict__, **paths})
    else:
        cfg = from_dict(GeneratorStage, body, where)
        paths = {k: _resolve(base, getattr(cfg, k)) for k in ("data", "out_dir", "syncnet", "silent", "init")}
        cfg = GeneratorStage(**{**cfg.__dict__, **paths})
        if stage == "generator" and cfg.use_silent and not cfg.silent:
            raise UserError(f"{where}.silent: a trained G_S checkpoint is needed when use_silent = true")
    return stage, cfg


def load_config(path: str | Path, expect_stage: Stage | None = None) -> tuple[Stage, StageConfig]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None
    stage, cfg = parse_config(data, str(path), path.resolve().parent)
    if expect_stage is not None and stage != expect_stage:
        raise UserError(
            f"{path}.stage: this config trains {stage!r}, but the command asked for {expect_stage!r}"
        )
    return stage, cfg
