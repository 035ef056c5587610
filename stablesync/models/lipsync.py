"""The deployable model: AVSyncNet's audio encoder (frozen), G_S and G_L, split for inference.

- `encode_reference(reference)` runs once per reference face: G_S turns the reference into
  the same face with closed, neutral lips (it is fed silent audio), and G_L's identity
  encoder turns that into the cached features. Nothing of the reference's own mouth reaches
  G_L, which is how the silent-lip generator stops lip leaking.
- `generate(features, frames, mels)` runs per frame: the cached features, the aligned target
  crops (masked inside) and one mel window per frame.
Export (`export/`) turns these two methods into two graphs.
"""

from __future__ import annotations

import torch
from torch import nn

from stablesync.models.audio_encoder import AudioEncoder
from stablesync.models.config import LipSyncConfig
from stablesync.models.generator import UNetGenerator
from stablesync.models.syncnet import AVSyncNet


class LipSyncModel(nn.Module):
    silent_mel: torch.Tensor

    def __init__(self, cfg: LipSyncConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = AudioEncoder(cfg.audio)
        self.silent = UNetGenerator(cfg.generator)  # G_S
        self.talker = UNetGenerator(cfg.generator)  # G_L
        silence = torch.full((1, 1, cfg.audio.n_mels, cfg.audio.window_frames), cfg.mel.silence_value)
        self.register_buffer("silent_mel", silence, persistent=False)
        self.freeze_audio_encoder()

    def freeze_audio_encoder(self) -> None:
        """The audio encoder is AVSyncNet's, kept frozen (no gradient, batch norm in eval mode)."""
        for p in self.audio_encoder.parameters():
            p.requires_grad_(False)
        self.audio_encoder.eval()

    def load_audio_encoder(self, syncnet: AVSyncNet) -> None:
        self.audio_encoder.load_state_dict(syncnet.audio_encoder.state_dict())
        self.freeze_audio_encoder()

    def train(self, mode: bool = True) -> LipSyncModel:
        super().train(mode)
        self.audio_encoder.eval()
        return self

    def silence(self, reference: torch.Tensor) -> torch.Tensor:
        """G_S: (B, 3, S, S) reference -> the same face with closed lips."""
        audio = self.audio_encoder(self.silent_mel.expand(reference.shape[0], -1, -1, -1))
        out: torch.Tensor = self.silent(self.silent.encode_identity(reference), reference, audio)
        return out

    def encode_reference(self, reference: torch.Tensor) -> list[torch.Tensor]:
        """Reference part, cached per face: (B, 3, S, S) -> G_L identity features per level."""
        return self.talker.encode_identity(self.silence(reference))

    def generate(
        self, features: list[torch.Tensor], frames: torch.Tensor, mels: torch.Tensor
    ) -> torch.Tensor:
        """Per-frame part: features per level, (B, 3, S, S) crops, (B, 1, n_mels, W) mels -> (B, 3, S, S)."""
        out: torch.Tensor = self.talker(features, frames, self.audio_encoder(mels))
        return out

    def forward(self, reference: torch.Tensor, frames: torch.Tensor, mels: torch.Tensor) -> torch.Tensor:
        return self.generate(self.encode_reference(reference), frames, mels)
