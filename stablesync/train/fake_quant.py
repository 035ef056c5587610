"""Quantisation-aware fine-tuning: the int8 arithmetic of `stablesync.export.quantize`, simulated.

`attach(module)` turns every Conv2d and Linear inside `module` into its fake-quantised twin, in
place: the weight is rounded to a per-output-channel symmetric int8 grid (scale = max |w| / 127,
as onnxruntime's static quantisation does, and the same grid once batch norm is folded, since
folding scales each output channel), and the input is rounded to a per-tensor uint8 grid whose
range (widened to hold 0) an observer follows as a moving average of each training batch's
min and max. `quantize_outputs(module)` rounds a module's output the same way (onnxruntime also
quantises what the elementwise operators give: residual adds, FiLM, the head's logits).
Gradients pass straight through the rounding (zero outside an activation's range). The state
dict keeps its keys (observers are not modules), so checkpoints save and load as usual;
`detach_all` turns the modules back. `freeze_batch_norm` keeps batch norm on its
running statistics while training. `stablesync train generator` uses this with
`fake_quant = true` (configs/cpu-rt/finetune/qat.toml).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INT8_MAX = 127  # symmetric int8 weights: [-127, 127]
UINT8_MAX = 255  # asymmetric uint8 activations: [0, 255]


def quantize_weight(w: torch.Tensor) -> torch.Tensor:
    """`w` on a per-output-channel (dim 0) symmetric int8 grid; straight-through gradient."""
    absmax = w.detach().abs().flatten(1).amax(1).clamp(min=1e-12)
    scale = (absmax / INT8_MAX).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -INT8_MAX, INT8_MAX)


def activation_grid(lo: float, hi: float) -> tuple[float, int]:
    """onnxruntime's uint8 scale and zero point for the range [lo, hi] (widened to hold 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / UINT8_MAX, 1e-12)
    return scale, round(-lo / scale)


class Observer:
    """A tensor's range, followed as a moving average of each observed batch's min and max, and
    the tensor rounded to the uint8 grid of that range. Not a module: no state-dict entries."""

    momentum = 0.01

    def __init__(self, observe: bool | None = None) -> None:
        self.lo: float | None = None
        self.hi = 0.0
        self.observe = observe  # None: observe in training mode only

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        if training if self.observe is None else self.observe:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if self.lo is None:
                self.lo, self.hi = lo, hi
            else:
                m = self.momentum
                self.lo, self.hi = (1 - m) * self.lo + m * lo, (1 - m) * self.hi + m * hi
        if self.lo is None:
            return x
        scale, zero = activation_grid(self.lo, self.hi)
        return torch.fake_quantize_per_tensor_affine(x, scale, zero, 0, UINT8_MAX)


class FakeQuantConv2d(nn.Conv2d):
    fq_in: Observer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(self.fq_in(x, self.training), quantize_weight(self.weight), self.bias)


class FakeQuantLinear(nn.Linear):
    fq_in: Observer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.fq_in(x, self.training), quantize_weight(self.weight), self.bias)


_TWINS: dict[type[nn.Module], type[nn.Module]] = {nn.Conv2d: FakeQuantConv2d, nn.Linear: FakeQuantLinear}


def attach(module: nn.Module, observe: bool | None = None) -> int:
    """Fake-quantises every Conv2d and Linear of `module` in place; -> how many. `observe=True`
    follows the input ranges in eval mode too (a frozen module such as the audio encoder)."""
    n = 0
    for m in module.modules():
        twin = _TWINS.get(type(m))
        if twin is not None:
            m.__class__ = twin
            m.__dict__["fq_in"] = Observer(observe)
            n += 1
    return n


def quantize_outputs(module: nn.Module, observe: bool | None = None) -> Observer:
    """`module`'s output rounded to uint8 as well (a forward hook): onnxruntime also quantises
    the outputs of the elementwise operators (residual adds, FiLM, the head's logits)."""
    observer = Observer(observe)

    def hook(mod: nn.Module, args: object, out: torch.Tensor) -> torch.Tensor:
        return observer(out, mod.training)

    module.register_forward_hook(hook)
    return observer


def freeze_batch_norm(module: nn.Module) -> None:
    """Batch norm of `module` normalises with its running statistics and stops updating them:
    the folded weights the int8 graph quantises stay those the fake quantisation rounded."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def detach_all(module: nn.Module) -> int:
    """Undoes `attach` (observer ranges dropped); -> how many modules turned back."""
    back = {twin: plain for plain, twin in _TWINS.items()}
    n = 0
    for m in module.modules():
        plain = back.get(type(m))
        if plain is not None:
            m.__class__ = plain
            m.__dict__.pop("fq_in", None)
            n += 1
    return n
