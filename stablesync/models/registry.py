"""Presets (named configurations) and the architecture registry used to rebuild checkpoints."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from torch import nn

from stablesync.errors import UserError
from stablesync.models.config import (
    AudioEncoderConfig,
    AVSyncNetConfig,
    DiscriminatorConfig,
    GeneratorConfig,
    LipSyncConfig,
    Preset,
    VisualEncoderConfig,
)
from stablesync.models.discriminator import PatchDiscriminator
from stablesync.models.generator import UNetGenerator
from stablesync.models.lipsync import LipSyncModel
from stablesync.models.syncnet import AVSyncNet

# Architecture name -> (config class, builder). Checkpoints store the name and the config.
ARCHITECTURES: dict[str, tuple[type[Any], Callable[[Any], nn.Module]]] = {
    "avsyncnet": (AVSyncNetConfig, AVSyncNet),
    "unet_generator": (GeneratorConfig, UNetGenerator),
    "lipsync": (LipSyncConfig, LipSyncModel),
    "patch_discriminator": (DiscriminatorConfig, PatchDiscriminator),
}


def arch_name(config: Any) -> str:
    for name, (cls, _) in ARCHITECTURES.items():
        if type(config) is cls:
            return name
    raise TypeError(f"no architecture registered for {type(config).__name__}")


def build(config: Any) -> nn.Module:
    """Any registered config -> a freshly initialised model of that architecture."""
    return ARCHITECTURES[arch_name(config)][1](config)


def _preset(
    name: str,
    description: str,
    size: int,
    gen: tuple[int, ...],
    fd_res: tuple[int, ...],
    audio: tuple[int, ...],
    visual: tuple[int, ...],
    disc: tuple[int, ...],
    embed: int = 256,
) -> Preset:
    audio_cfg = AudioEncoderConfig(channels=audio, embed_dim=embed)
    return Preset(
        name=name,
        description=description,
        lipsync=LipSyncConfig(
            audio=audio_cfg,
            generator=GeneratorConfig(
                image_size=size, channels=gen, fd_res_blocks=fd_res, audio_dim=embed, keep_visible=True
            ),
        ),
        syncnet=AVSyncNetConfig(
            audio=audio_cfg, visual=VisualEncoderConfig(image_size=size, channels=visual, embed_dim=embed)
        ),
        discriminator=DiscriminatorConfig(image_size=size, channels=disc),
    )


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _preset(
            "cpu-rt",
            "CPU real-time default: 96x96, per-frame part sized for 25 fps on 2 cores",
            96,
            gen=(16, 32, 64, 96, 128),
            fd_res=(0, 0, 1, 1),
            audio=(16, 32, 64, 128),
            visual=(32, 64, 128, 256, 256),
            disc=(32, 64, 128, 256),
        ),
        _preset(
            "paper",
            "the paper's configuration: 96x96, ResNetSE-34 audio encoder at half width",
            96,
            gen=(32, 64, 128, 256, 512),
            fd_res=(0, 1, 1, 1),
            audio=(32, 64, 128, 256),
            visual=(64, 128, 256, 512, 512),
            disc=(64, 128, 256, 512),
            embed=512,
        ),
        _preset(
            "gpu-256",
            "256x256 for GPUs (TensorRT fp16)",
            256,
            gen=(32, 64, 128, 256, 512, 512),
            fd_res=(0, 1, 1, 1, 1),
            audio=(32, 64, 128, 256),
            visual=(32, 64, 128, 256, 512),
            disc=(64, 128, 256, 512, 512),
            embed=512,
        ),
    )
}

DEFAULT_PRESET = "cpu-rt"


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"preset {name!r}: unknown; expected one of {', '.join(PRESETS)}")
    return PRESETS[name]


def list_presets() -> list[str]:
    return list(PRESETS)


def create(name: str = DEFAULT_PRESET, **overrides: Any) -> LipSyncModel:
    """The deployable model of a preset; `overrides` replace top-level LipSyncConfig fields."""
    cfg = get_preset(name).lipsync
    try:
        cfg = dataclasses.replace(cfg, **overrides)
    except TypeError as exc:
        raise UserError(f"preset {name!r}: bad override: {exc}") from None
    return LipSyncModel(cfg)
