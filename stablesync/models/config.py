"""One frozen config dataclass per architecture, and the preset that groups them.

Configs are stored as JSON in checkpoints (`stablesync.checkpoint`) and rebuilt with
`stablesync.typed_config.from_dict`, so a checkpoint always rebuilds its own architecture.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from stablesync.audio import MelConfig


@dataclass(frozen=True)
class AudioEncoderConfig:
    """ResNetSE-34-style encoder over one mel window (n_mels x window_frames)."""

    n_mels: int = 80
    window_frames: int = 16  # 200 ms at 80 mel frames/s
    channels: tuple[int, ...] = (16, 32, 64, 128)
    blocks: tuple[int, ...] = (3, 4, 6, 3)  # ResNet-34's stage depths
    embed_dim: int = 256
    se_reduction: int = 4

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.blocks):
            raise ValueError("audio encoder: channels and blocks must have the same length")


@dataclass(frozen=True)
class VisualEncoderConfig:
    """ResNet-style encoder over the lower half of `n_frames` consecutive face crops."""

    image_size: int = 96
    n_frames: int = 5
    channels: tuple[int, ...] = (32, 64, 128, 256, 256)
    blocks: tuple[int, ...] = (1, 2, 2, 2, 1)
    embed_dim: int = 256

    def __post_init__(self) -> None:
        if len(self.channels) != len(self.blocks):
            raise ValueError("visual encoder: channels and blocks must have the same length")


@dataclass(frozen=True)
class AVSyncNetConfig:
    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    visual: VisualEncoderConfig = field(default_factory=VisualEncoderConfig)

    def __post_init__(self) -> None:
        if self.audio.embed_dim != self.visual.embed_dim:
            raise ValueError("AVSyncNet: audio and visual embed_dim must match")


@dataclass(frozen=True)
class GeneratorConfig:
    """The U-Net used twice, as G_S and G_L.

    `channels[i]` is the width at level i (level 0 at full resolution, each next level halves
    it), so image_size must be divisible by 2**(len(channels)-1). `fd_res_blocks[i]` residual
    blocks follow the fusion in the face-decoding block of level i (the full-resolution levels
    have none in the CPU preset: they dominate the cost).
    `keep_visible`: the output's upper half is the input frame's own (the half the pose
    encoder sees), so only the masked half is generated; every preset sets it. False (the
    default, what checkpoints saved before it existed load with) regenerates the whole face.
    """

    image_size: int = 96
    channels: tuple[int, ...] = (16, 32, 64, 128, 256)
    fd_res_blocks: tuple[int, ...] = (0, 1, 1, 1)
    audio_dim: int = 256
    keep_visible: bool = False

    def __post_init__(self) -> None:
        levels = len(self.channels)
        if self.image_size % (2 ** (levels - 1)):
            raise ValueError(f"generator: image_size {self.image_size} not divisible by {2 ** (levels - 1)}")
        if len(self.fd_res_blocks) != levels - 1:
            raise ValueError("generator: fd_res_blocks needs one entry per decoding level (len(channels)-1)")


@dataclass(frozen=True)
class LipSyncConfig:
    """The deployable model: AVSyncNet's audio encoder (frozen), G_S and G_L.

    `lookahead_ms`: each video frame is paired with the mel window ending this long after
    the frame's instant (see `stablesync.audio.mel_window_start`).
    """

    audio: AudioEncoderConfig = field(default_factory=AudioEncoderConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    fps: float = 25.0
    lookahead_ms: float = 80.0

    def __post_init__(self) -> None:
        if self.audio.embed_dim != self.generator.audio_dim:
            raise ValueError("lipsync: audio.embed_dim must equal generator.audio_dim")
        if self.audio.n_mels != self.mel.n_mels:
            raise ValueError("lipsync: audio.n_mels must equal mel.n_mels")


@dataclass(frozen=True)
class DiscriminatorConfig:
    """PatchGAN over the face crop; see `stablesync.models.discriminator`."""

    image_size: int = 96
    channels: tuple[int, ...] = (32, 64, 128, 256)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    lipsync: LipSyncConfig
    syncnet: AVSyncNetConfig
    discriminator: DiscriminatorConfig
