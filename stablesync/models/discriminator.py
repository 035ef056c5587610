"""Discriminator for the GAN loss (the paper does not publish one).

Decision: a PatchGAN over the whole face crop, 4x4 stride-2 convolutions with spectral norm
and LeakyReLU(0.2), no normalisation layers; the last layer gives one logit per patch (6x6
patches at 96x96). It returns the features of every layer too, for the feature-matching loss
that stands in, with SSIM, for a pretrained perceptual network (see stablesync.losses).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from stablesync.models.config import DiscriminatorConfig


class PatchDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers = []
        c_prev = 3
        for c in cfg.channels:
            layers.append(
                nn.Sequential(
                    spectral_norm(nn.Conv2d(c_prev, c, 4, stride=2, padding=1)),
                    nn.LeakyReLU(0.2, inplace=True),
                )
            )
            c_prev = c
        self.layers = nn.ModuleList(layers)
        self.head = spectral_norm(nn.Conv2d(c_prev, 1, 3, padding=1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # image: (B, 3, S, S) in [0, 1]
        feats = []
        h = image * 2.0 - 1.0
        for layer in self.layers:
            h = layer(h)  # (B, C_i, S/2^(i+1), S/2^(i+1))
            feats.append(h)
        return self.head(h), feats  # logits (B, 1, S/2^L, S/2^L)
