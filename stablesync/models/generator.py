"""The U-Net generator used twice: as G_S (silent-lip) and as G_L (talking face).

Decisions where the paper is silent:
- Two encoders of the same shape and separate weights: the identity encoder reads the
  (silent) identity reference, the pose encoder reads the target frame with its lower half
  masked (the mask is applied inside, so callers pass plain aligned crops). Level 0 is a 3x3
  stem at full resolution; each next level is a stride-2 conv and a residual block.
- Audio enters as the embedding of the frozen AVSyncNet audio encoder: tiled into the
  bottleneck, and as a FiLM modulation (per-channel scale and shift) in every face-decoding
  block, so the mouth shape can be set at every resolution.
- Face-decoding (FD) block at level i: upsample x2 (nearest) + 3x3 conv, concatenate the pose
  and identity skip features of that level, fuse with a 3x3 conv, FiLM from the audio, ReLU,
  then `fd_res_blocks[i]` residual blocks. A 3x3 conv and a sigmoid give RGB in [0, 1].
- Batch norm everywhere (folded into the convolutions at export), ReLU activations.
- With `keep_visible` (all presets) the upper half of the output is the input frame's: the
  network only has to generate the half it cannot see, and the eyes and nose stay sharp.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from stablesync.models.blocks import ConvBNReLU, ResBlock
from stablesync.models.config import GeneratorConfig


def lower_half_mask(image_size: int) -> torch.Tensor:
    """(1, 1, S, S) mask: 1 on the upper half, 0 on the lower half (mouth and jaw)."""
    mask = torch.ones(1, 1, image_size, image_size)
    mask[..., image_size // 2 :, :] = 0.0
    return mask


class FaceEncoder(nn.Module):
    """Image -> one feature map per level, highest resolution first."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        ch = cfg.channels
        self.levels = nn.ModuleList([ConvBNReLU(3, ch[0])])
        for i in range(1, len(ch)):
            self.levels.append(nn.Sequential(ConvBNReLU(ch[i - 1], ch[i], stride=2), ResBlock(ch[i], ch[i])))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        h = image  # (B, 3, S, S)
        for level in self.levels:
            h = level(h)  # (B, C_i, S/2^i, S/2^i)
            feats.append(h)
        return feats


class FiLM(nn.Module):
    def __init__(self, audio_dim: int, channels: int) -> None:
        super().__init__()
        self.affine = nn.Linear(audio_dim, 2 * channels)
        nn.init.zeros_(self.affine.weight)
        nn.init.zeros_(self.affine.bias)

    def forward(self, h: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.affine(audio)[:, :, None, None].chunk(2, dim=1)  # (B, C, 1, 1) each
        return h * (1.0 + gamma) + beta


class FaceDecodingBlock(nn.Module):
    def __init__(self, c_below: int, c_out: int, audio_dim: int, res_blocks: int) -> None:
        super().__init__()
        self.up = ConvBNReLU(c_below, c_out)
        self.fuse = nn.Sequential(
            nn.Conv2d(3 * c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)
        )
        self.film = FiLM(audio_dim, c_out)
        self.act = nn.ReLU(inplace=True)
        self.res = nn.Sequential(*[ResBlock(c_out, c_out) for _ in range(res_blocks)])

    def forward(
        self, h: torch.Tensor, pose: torch.Tensor, identity: torch.Tensor, audio: torch.Tensor
    ) -> torch.Tensor:
        h = self.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)
        h = self.fuse(torch.cat([h, pose, identity], dim=1))  # (B, C, 2H, 2W)
        return self.res(self.act(self.film(h, audio)))


class UNetGenerator(nn.Module):
    pose_mask: torch.Tensor

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.identity_encoder = FaceEncoder(cfg)
        self.pose_encoder = FaceEncoder(cfg)
        self.register_buffer("pose_mask", lower_half_mask(cfg.image_size), persistent=False)
        self.audio_to_map = nn.Linear(cfg.audio_dim, ch[-1])
        self.bottleneck = nn.Sequential(ConvBNReLU(3 * ch[-1], ch[-1], kernel=1), ResBlock(ch[-1], ch[-1]))
        self.bottleneck_film = FiLM(cfg.audio_dim, ch[-1])
        self.decoder = nn.ModuleList(
            [
                FaceDecodingBlock(ch[i + 1], ch[i], cfg.audio_dim, cfg.fd_res_blocks[i])
                for i in reversed(range(len(ch) - 1))
            ]
        )
        self.head = nn.Conv2d(ch[0], 3, 3, padding=1)

    def encode_identity(self, identity: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, S, S) identity reference -> its features per level (cacheable)."""
        feats: list[torch.Tensor] = self.identity_encoder(identity)
        return feats

    def forward(
        self, identity_feats: list[torch.Tensor], frame: torch.Tensor, audio: torch.Tensor
    ) -> torch.Tensor:
        # identity_feats[i]: (B, C_i, S/2^i, S/2^i); frame: (B, 3, S, S) in [0, 1]; audio: (B, A)
        pose = self.pose_encoder(frame * self.pose_mask)
        tiled = self.audio_to_map(audio)[:, :, None, None].expand_as(pose[-1])  # (B, C_L, s, s)
        h = self.bottleneck(torch.cat([pose[-1], identity_feats[-1], tiled], dim=1))
        h = self.bottleneck_film(h, audio)  # (B, C_L, S/2^L, S/2^L)
        for j, block in enumerate(self.decoder):
            i = len(self.decoder) - 1 - j
            h = block(h, pose[i], identity_feats[i], audio)  # (B, C_i, S/2^i, S/2^i)
        out = torch.sigmoid(self.head(h))  # (B, 3, S, S)
        if self.cfg.keep_visible:  # the visible half is known: only the masked half is generated
            out = frame * self.pose_mask + out * (1.0 - self.pose_mask)
        return out
