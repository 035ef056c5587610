"""A peer's generator to time ours against: Wav2Lip's 96 px generator, built from its paper.

Wav2Lip (Prajwal, Mukhopadhyay, Namboodiri, Jawahar, ACM MM 2020, "A Lip Sync Expert Is All
You Need for Speech to Lip Generation In the Wild") describes a generator of three parts; the
layer structure and channel widths below are its published ones, written here from that
description (no code taken from its repository or any other). Its repository's README gives
the model ~36M parameters; `param_count` of this one is 36.3M.

- Face encoder over the 6-channel 96x96 input (the target face with its lower half masked,
  stacked with a reference face): a 7x7 convolution to 16 channels, then strided 3x3 blocks
  to 32 / 64 / 128 / 256 / 512 channels (48 / 24 / 12 / 6 / 3 px), each followed by 2, 3, 2,
  2 and 1 residual blocks, then a 3x3 valid convolution and a 1x1 one to a 512x1x1 code. Each
  level's output is kept for the decoder's skip connections.
- Audio encoder over the 80x16 mel window: 32 channels, then strided 3x3 blocks to 64
  (stride 3x1), 128 (3x3) and 256 (3x2) channels with 2, 2, 2 and 1 residual blocks, then a
  3x3 valid convolution and a 1x1 one to a 512x1x1 embedding.
- Decoder from the audio embedding: a 1x1 block, then transposed convolutions to 512 (3 px),
  512, 384, 256, 128 and 64 channels (6 ... 96 px), each followed by residual blocks, each
  level's output concatenated with the face encoder's output of the same size; an output
  block of a 3x3 convolution to 32 channels, a 1x1 convolution to 3 and a sigmoid.

Every convolution except the last is followed by batch norm and ReLU; a residual block adds
its input before the ReLU. Speed does not depend on the weights: random init is enough to
time it. Wav2Lip has no cached reference path: each frame runs the whole generator.
"""

from __future__ import annotations

import torch
from torch import nn

WAV2LIP_SIZE = 96
WAV2LIP_MEL = (80, 16)  # mel bands x frames in the window one video frame hears

# One encoder level: (channels, kernel, stride, padding, residual blocks after it); a level
# with several entries is several convolutions in a row.
Level = list[tuple[int, int, int | tuple[int, int], int, int]]
FACE_LEVELS: list[Level] = [
    [(16, 7, 1, 3, 0)],  # 96 px
    [(32, 3, 2, 1, 2)],  # 48
    [(64, 3, 2, 1, 3)],  # 24
    [(128, 3, 2, 1, 2)],  # 12
    [(256, 3, 2, 1, 2)],  # 6
    [(512, 3, 2, 1, 1)],  # 3
    [(512, 3, 1, 0, 0), (512, 1, 1, 0, 0)],  # 1
]
AUDIO_LEVELS: list[Level] = [
    [(32, 3, 1, 1, 2)],  # 80x16
    [(64, 3, (3, 1), 1, 2)],  # 27x16
    [(128, 3, 3, 1, 2)],  # 9x6
    [(256, 3, (3, 2), 1, 1)],  # 3x3
    [(512, 3, 1, 0, 0), (512, 1, 1, 0, 0)],  # 1x1
]
# Decoder levels after the first 1x1 one: (channels out of the transposed convolution,
# kernel, stride, padding, output padding, residual blocks after it).
DECODER_LEVELS = [
    (512, 3, 1, 0, 0, 1),  # 3 px
    (512, 3, 2, 1, 1, 2),  # 6
    (384, 3, 2, 1, 1, 2),  # 12
    (256, 3, 2, 1, 1, 2),  # 24
    (128, 3, 2, 1, 1, 2),  # 48
    (64, 3, 2, 1, 1, 2),  # 96
]


class ConvBnRelu(nn.Module):
    """Convolution (or transposed convolution), batch norm, ReLU; `residual` adds the input
    before the ReLU (same channels and size in and out)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int | tuple[int, int] = 1,
        padding: int = 0,
        *,
        residual: bool = False,
        transposed: bool = False,
        output_padding: int = 0,
    ) -> None:
        super().__init__()
        self.conv: nn.Module
        if transposed:
            self.conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding)
        else:
            self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding)
        self.norm = nn.BatchNorm2d(c_out)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.conv(x))
        return torch.relu(y + x if self.residual else y)


def _level(c_in: int, spec: Level) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for channels, kernel, stride, padding, repeats in spec:
        layers.append(ConvBnRelu(c_in, channels, kernel, stride, padding))
        layers += [ConvBnRelu(channels, channels, 3, 1, 1, residual=True) for _ in range(repeats)]
        c_in = channels
    return nn.Sequential(*layers), c_in


def _encoder(c_in: int, levels: list[Level]) -> tuple[nn.ModuleList, list[int]]:
    blocks, widths = [], []
    for spec in levels:
        block, c_in = _level(c_in, spec)
        blocks.append(block)
        widths.append(c_in)
    return nn.ModuleList(blocks), widths


class Wav2LipGenerator(nn.Module):
    """`forward(face (B, 6, 96, 96), mel (B, 1, 80, 16)) -> face (B, 3, 96, 96)` in [0, 1]."""

    def __init__(self) -> None:
        super().__init__()
        self.face_encoder, face_widths = _encoder(6, FACE_LEVELS)
        self.audio_encoder, audio_widths = _encoder(1, AUDIO_LEVELS)
        code = audio_widths[-1]
        decoder: list[nn.Module] = [ConvBnRelu(code, 512, 1)]
        c_in = 512 + face_widths[-1]
        for skip, (channels, kernel, stride, padding, out_pad, repeats) in zip(
            reversed(face_widths[:-1]), DECODER_LEVELS, strict=True
        ):
            level: list[nn.Module] = [
                ConvBnRelu(c_in, channels, kernel, stride, padding, transposed=True, output_padding=out_pad)
            ]
            level += [ConvBnRelu(channels, channels, 3, 1, 1, residual=True) for _ in range(repeats)]
            decoder.append(nn.Sequential(*level))
            c_in = channels + skip
        self.decoder = nn.ModuleList(decoder)
        self.output = nn.Sequential(ConvBnRelu(c_in, 32, 3, 1, 1), nn.Conv2d(32, 3, 1), nn.Sigmoid())

    def forward(self, face: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        skips = []
        x = face
        for block in self.face_encoder:
            x = block(x)
            skips.append(x)
        y = mel
        for block in self.audio_encoder:
            y = block(y)
        for block in self.decoder:
            y = torch.cat([block(y), skips.pop()], dim=1)
        return self.output(y)


def param_count(model: nn.Module) -> int:
    """Trainable parameters (batch norm's scale and shift included, its running statistics not)."""
    return sum(p.numel() for p in model.parameters())


def wav2lip_inputs(batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (face, mel) of Wav2Lip's shapes: faces in [0, 1], mels in the usual [-4, 4]."""
    gen = torch.Generator().manual_seed(seed)
    face = torch.rand(batch, 6, WAV2LIP_SIZE, WAV2LIP_SIZE, generator=gen)
    mel = torch.rand(batch, 1, *WAV2LIP_MEL, generator=gen) * 8.0 - 4.0
    return face, mel
