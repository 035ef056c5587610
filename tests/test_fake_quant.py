"""Quantisation-aware fine-tuning's fake quantisation (stablesync.train.fake_quant): no training."""

from __future__ import annotations

import torch
from torch import nn

from stablesync.train import fake_quant


def _net() -> tuple[nn.Sequential, nn.Conv2d]:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 5)), conv


def _fq_in(m: nn.Module) -> fake_quant.Observer:
    observer = m.__dict__["fq_in"]
    assert isinstance(observer, fake_quant.Observer)
    return observer


def test_weights_land_on_the_per_channel_int8_grid() -> None:
    w = torch.randn(8, 3, 3, 3) * torch.linspace(0.1, 2.0, 8)[:, None, None, None]
    q = fake_quant.quantize_weight(w)
    scale = w.abs().flatten(1).amax(1) / 127
    steps = q / scale[:, None, None, None]
    assert torch.allclose(steps, steps.round(), atol=1e-3)
    assert steps.abs().max() <= 127 + 1e-3
    assert not torch.equal(q, w)
    assert (q - w).abs().max() <= scale.max() / 2 + 1e-6


def test_activation_grid_is_onnxruntime_s_uint8_one() -> None:
    scale, zero = fake_quant.activation_grid(0.5, 2.55)  # widened to [0, 2.55]
    assert abs(scale - 0.01) < 1e-9 and zero == 0
    scale, zero = fake_quant.activation_grid(-1.0, 1.0)
    assert abs(scale - 2 / 255) < 1e-9 and zero == 128


def test_attach_keeps_the_state_dict_and_rounds_inputs_after_observing() -> None:
    net, conv = _net()
    keys = list(net.state_dict())
    x = torch.rand(2, 3, 4, 4)
    plain = net(x)
    assert fake_quant.attach(net) == 2
    assert list(net.state_dict()) == keys
    net.eval()
    assert _fq_in(conv).lo is None  # nothing observed in eval mode: inputs pass, weights are rounded
    assert not torch.equal(net(x), plain)
    net.train()
    net(x)
    assert _fq_in(conv).lo == float(x.min()) and _fq_in(conv).hi == float(x.max())
    out = net(x)
    out.sum().backward()  # straight-through: gradients reach the latent weights
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0
    assert fake_quant.detach_all(net) == 2
    assert type(conv) is nn.Conv2d and "fq_in" not in conv.__dict__
    assert torch.equal(net.eval()(x), plain)


def test_observe_follows_a_frozen_module_in_eval_mode() -> None:
    net, conv = _net()
    net.eval()
    fake_quant.attach(net, observe=True)
    net(torch.rand(2, 3, 4, 4))
    assert _fq_in(conv).lo is not None


def test_outputs_round_to_the_observed_uint8_grid() -> None:
    _, conv = _net()
    observer = fake_quant.quantize_outputs(conv)
    x = torch.rand(2, 3, 4, 4)
    first = conv(x)  # observed, then rounded: 256 levels at most between min and max
    scale, zero = fake_quant.activation_grid(observer.lo, observer.hi)  # type: ignore[arg-type]
    levels = first.detach() / scale + zero
    assert torch.allclose(levels, levels.round(), atol=1e-3)
    assert observer.lo == float(nn.functional.conv2d(x, conv.weight, conv.bias, padding=1).detach().min())


def test_the_generator_stage_rounds_the_frame_graph_only() -> None:
    from stablesync.models import create
    from stablesync.train.generator_stage import _fake_quantize_frame_graph

    model = create("cpu-rt")
    _fake_quantize_frame_graph(model.talker, model.audio_encoder)
    talker = model.talker
    # the identity encoder runs in fp32 (reference.onnx); G_S is not in the frame graph
    assert all(type(m) is not fake_quant.FakeQuantConv2d for m in talker.identity_encoder.modules())
    assert all(type(m) is not fake_quant.FakeQuantConv2d for m in model.silent.modules())
    for part in (talker.pose_encoder, talker.decoder, talker.head, model.audio_encoder):
        assert any(type(m) is fake_quant.FakeQuantConv2d for m in part.modules())
    assert talker.head._forward_hooks and talker.bottleneck_film._forward_hooks


def test_a_head_kept_in_fp32_is_left_as_it_is_and_the_rest_still_rounds() -> None:
    from stablesync.models import create
    from stablesync.train.generator_stage import _fake_quantize_frame_graph

    model = create("cpu-rt")
    _fake_quantize_frame_graph(model.talker, model.audio_encoder, keep_fp32=("head",))
    talker = model.talker
    # the head: a plain convolution, its logits not rounded (the int8 graph's tail stays fp32)
    assert type(talker.head) is nn.Conv2d and not talker.head._forward_hooks
    for part in (talker.pose_encoder, talker.decoder, model.audio_encoder):
        assert any(type(m) is fake_quant.FakeQuantConv2d for m in part.modules())
    assert talker.bottleneck_film._forward_hooks
