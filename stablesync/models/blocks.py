"""Building blocks shared by the encoders, the U-Net and the discriminator."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """3x3 (or k x k) convolution, batch norm, ReLU: fused into one op by onnxruntime/TensorRT."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int = 3, stride: int | tuple[int, int] = 1, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        ]
        if act:
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class ResBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), optional squeeze-excitation, projection on shape change."""

    def __init__(
        self, c_in: int, c_out: int, stride: int | tuple[int, int] = 1, se_reduction: int = 0
    ) -> None:
        super().__init__()
        self.body = nn.Sequential(
            ConvBNReLU(c_in, c_out, stride=stride),
            ConvBNReLU(c_out, c_out, act=False),
        )
        self.se = SqueezeExcite(c_out, se_reduction) if se_reduction else nn.Identity()
        needs_proj = c_in != c_out or stride != 1
        self.shortcut = (
            ConvBNReLU(c_in, c_out, kernel=1, stride=stride, act=False) if needs_proj else nn.Identity()
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.se(self.body(x)) + self.shortcut(x))


def resnet_stage(
    c_in: int, c_out: int, depth: int, stride: int | tuple[int, int], se_reduction: int = 0
) -> nn.Sequential:
    blocks: list[nn.Module] = [ResBlock(c_in, c_out, stride=stride, se_reduction=se_reduction)]
    blocks += [ResBlock(c_out, c_out, se_reduction=se_reduction) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)
