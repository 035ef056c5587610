"""The paper's networks (torch): AVSyncNet, the U-Net used as G_S and G_L, the discriminator.

`create(name, **overrides)` builds a preset's deployable model, `list_presets()` names them,
`get_preset(name)` gives every architecture's config of a preset, `build(config)` any model.
"""

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
