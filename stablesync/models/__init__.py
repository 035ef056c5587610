"""The paper's networks (torch): AVSyncNet, the U-Net used as G_S and G_L, the discriminator.

`create(name, **overrides)` builds a preset's deployable model, `list_presets()` names them,
`get_preset(name)` gives every architecture's config of a preset, `build(config)` any model.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from stablesync.models.registry import (
        ARCHITECTURES,
        DEFAULT_PRESET,
        PRESETS,
        arch_name,
        build,
        create,
        get_preset,
        list_presets,
    )
    from stablesync.models.syncnet import AVSyncNet

# name -> submodule: the networks import torch, so they load on first use, which keeps
# `import stablesync.models.<module>` (e.g. the `presets` command's --help) free of torch
_SUBMODULES = {
    **dict.fromkeys(
        (
            "AudioEncoderConfig",
            "AVSyncNetConfig",
            "DiscriminatorConfig",
            "GeneratorConfig",
            "LipSyncConfig",
            "Preset",
            "VisualEncoderConfig",
        ),
        "config",
    ),
    "PatchDiscriminator": "discriminator",
    "UNetGenerator": "generator",
    "LipSyncModel": "lipsync",
    "AVSyncNet": "syncnet",
    **dict.fromkeys(
        (
            "ARCHITECTURES",
            "DEFAULT_PRESET",
            "PRESETS",
            "arch_name",
            "build",
            "create",
            "get_preset",
            "list_presets",
        ),
        "registry",
    ),
}


def __getattr__(name: str) -> Any:
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_SUBMODULES[name]}"), name)


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_PRESET",
    "PRESETS",
    "AVSyncNet",
    "AVSyncNetConfig",
    "AudioEncoderConfig",
    "DiscriminatorConfig",
    "GeneratorConfig",
    "LipSyncConfig",
    "LipSyncModel",
    "PatchDiscriminator",
    "Preset",
    "UNetGenerator",
    "VisualEncoderConfig",
    "arch_name",
    "build",
    "create",
    "get_preset",
    "list_presets",
]
