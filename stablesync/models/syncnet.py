"""AVSyncNet: the audio-visual synchronisation expert.

Visual encoder (decision): the lower half of `n_frames` consecutive RGB crops stacked on the
channel axis (3*n_frames channels, image_size/2 x image_size), a 3x3 stem and ResNet basic-block
stages, each halving the resolution, average pooling and a linear layer. Both embeddings are
L2-normalised; `similarity` is their cosine. Training (stablesync.train) applies binary
cross-entropy to the cosine mapped to (0, 1), with negatives from other, non-overlapping
windows of the same clip, as the paper describes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stablesync.models.audio_encoder import AudioEncoder
from stablesync.models.blocks import ConvBNReLU, resnet_stage
from stablesync.models.config import AVSyncNetConfig, VisualEncoderConfig


def lower_half(frames: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (..., 3, H/2, W): the mouth and jaw region of aligned crops."""
    return frames[..., frames.shape[-2] // 2 :, :]


class VisualEncoder(nn.Module):
    def __init__(self, cfg: VisualEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = ConvBNReLU(3 * cfg.n_frames, cfg.channels[0])
        stages: list[nn.Module] = []
        c_prev = cfg.channels[0]
        for c, depth in zip(cfg.channels, cfg.blocks, strict=True):
            stages.append(resnet_stage(c_prev, c, depth, stride=2))
            c_prev = c
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(c_prev, cfg.embed_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        # frames: (B, T, 3, S, S) in [0, 1]
        b, t, c, _, s = frames.shape
        x = lower_half(frames).reshape(b, t * c, s // 2, s)  # (B, 3T, S/2, S)
        h = self.stages(self.stem(x))  # (B, C, S/2/2^L, S/2^L)
        return self.proj(self.pool(h).flatten(1))  # (B, D)


class AVSyncNet(nn.Module):
    def __init__(self, cfg: AVSyncNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio_encoder = AudioEncoder(cfg.audio)
        self.visual_encoder = VisualEncoder(cfg.visual)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio_encoder(mel), dim=-1)  # (B, D), unit length

    def embed_visual(self, frames: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual_encoder(frames), dim=-1)  # (B, D), unit length

    def similarity(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Cosine similarity in [-1, 1] of (B, T, 3, S, S) frames and (B, 1, n_mels, W) mel windows."""
        return (self.embed_visual(frames) * self.embed_audio(mel)).sum(-1)  # (B,)

    def forward(self, frames: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        return self.similarity(frames, mel)
