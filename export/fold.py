"""Batch norm folded into the convolution before it, in PyTorch, before a graph is exported.

With fp16 weight storage the rounding must happen AFTER folding: rounding the convolution and
the batch norm separately and letting the exporter (or onnxruntime) fold them afterwards rounds
twice, and over the U-Net's depth that grows to ~1e-2 on the output. Folding here first means
the graph holds exactly the weights PyTorch computed with, so the parity check measures the
export and not the rounding order.

    y = gamma * (W x + b - mean) / sqrt(var + eps) + beta
      = (s W) x + (s (b - mean) + beta),   s = gamma / sqrt(var + eps)
"""

from __future__ import annotations

import itertools

import torch
from torch import nn


def _folded(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    assert bn.running_mean is not None and bn.running_var is not None
    scale = bn.running_var.add(bn.eps).rsqrt()
    if bn.affine:
        scale = scale * bn.weight
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    shift = (bias - bn.running_mean) * scale + (bn.bias if bn.affine else 0.0)
    out = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        stride=conv.stride,  # type: ignore[arg-type]
        padding=conv.padding,  # type: ignore[arg-type]
        dilation=conv.dilation,  # type: ignore[arg-type]
        groups=conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        out.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        out.bias = nn.Parameter(shift.detach().clone())
    return out


def fold_batch_norm(module: nn.Module) -> int:
    """Folds every (Conv2d, BatchNorm2d) pair adjacent in an nn.Sequential, in place.

    The batch norm becomes an Identity, so module paths stay as they were. Only for inference
    (eval mode: the running statistics are used). Returns how many pairs were folded.
    """
    if module.training:
        raise ValueError("fold_batch_norm: the module must be in eval mode")
    count = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[a] = _folded(conv, bn)
                seq._modules[b] = nn.Identity()
                count += 1
    return count


def round_weights_fp16(module: nn.Module) -> None:
    """Rounds every float weight and buffer to the nearest fp16 value, keeping its dtype."""
    with torch.no_grad():
        for t in [*module.parameters(), *module.buffers()]:
            if t.is_floating_point():
                t.copy_(t.to(torch.float16).to(t.dtype))


def as_exported(module: nn.Module, fp16_weights: bool) -> None:
    """In place: what the exported graphs compute (batch norm folded, then fp16 rounding if so)."""
    fold_batch_norm(module)
    if fp16_weights:
        round_weights_fp16(module)
