"""AVSyncNet's audio encoder: ResNetSE-34-style CNN over one 200 ms mel window.

Decisions (the paper names the family, not the details): a 3x3 stem, four stages of
squeeze-excitation basic blocks with ResNet-34 depths (3, 4, 6, 3); the first stage keeps the
resolution, each later stage halves frequency and time (80x16 -> 10x2); average pooling over
what is left and a linear layer give the embedding. The same module, frozen, is G_L's audio
encoder, so its output is left unnormalised; AVSyncNet normalises it for the similarity.
"""

from __future__ import annotations

import torch
from torch import nn

from stablesync.models.blocks import ConvBNReLU, resnet_stage
from stablesync.models.config import AudioEncoderConfig


class AudioEncoder(nn.Module):
    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = ConvBNReLU(1, cfg.channels[0])
        stages: list[nn.Module] = []
        c_prev = cfg.channels[0]
        for i, (c, depth) in enumerate(zip(cfg.channels, cfg.blocks, strict=True)):
            stages.append(
                resnet_stage(c_prev, c, depth, stride=1 if i == 0 else 2, se_reduction=cfg.se_reduction)
            )
            c_prev = c
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(c_prev, cfg.embed_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        # mel: (B, 1, n_mels, window_frames) on the normalised [-4, 4] scale
        h = self.stages(self.stem(mel))  # (B, C, n_mels/8, window/8)
        return self.proj(self.pool(h).flatten(1))  # (B, embed_dim)
