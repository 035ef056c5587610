import dataclasses

import pytest
import torch

from stablesync.errors import UserError
from stablesync.models import (
    AVSyncNet,
    LipSyncModel,
    PatchDiscriminator,
    create,
    get_preset,
    list_presets,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(
    "name", [n if n == "cpu-rt" else pytest.param(n, marks=pytest.mark.slow) for n in list_presets()]
)
def test_every_preset_gives_finite_outputs_of_documented_shapes(name: str) -> None:
    preset = get_preset(name)
    s = preset.lipsync.generator.image_size
    model = create(name).eval()
    ref, frames = torch.rand(2, 3, s, s), torch.rand(2, 3, s, s)
    mels = torch.rand(2, 1, 80, 16) * 8 - 4
    with torch.no_grad():
        feats = model.encode_reference(ref)
        out = model.generate(feats, frames, mels)
        silent = model.silence(ref)
    chans = preset.lipsync.generator.channels
    assert [tuple(f.shape) for f in feats] == [(2, c, s >> i, s >> i) for i, c in enumerate(chans)]
    assert out.shape == silent.shape == (2, 3, s, s)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1

    sync = AVSyncNet(preset.syncnet).eval()
    with torch.no_grad():
        sim = sync.similarity(torch.rand(2, 5, 3, s, s), mels)
    assert sim.shape == (2,) and torch.isfinite(sim).all() and sim.abs().max() <= 1 + 1e-5

    logits, feats_d = PatchDiscriminator(preset.discriminator)(frames)
    patches = s >> len(preset.discriminator.channels)
    assert logits.shape == (2, 1, patches, patches) and len(feats_d) == len(preset.discriminator.channels)


@pytest.mark.slow
def test_split_inference_equals_whole_forward() -> None:
    model = create("cpu-rt").eval()
    ref, frames, mels = torch.rand(3, 3, 96, 96), torch.rand(3, 3, 96, 96), torch.randn(3, 1, 80, 16)
    with torch.no_grad():
        whole = model(ref, frames, mels)
        split = model.generate(model.encode_reference(ref), frames, mels)
    torch.testing.assert_close(whole, split)


def test_generator_lower_half_of_the_target_is_masked() -> None:
    model = create("cpu-rt").eval()
    ref, mels = torch.rand(1, 3, 96, 96), torch.randn(1, 1, 80, 16)
    a, b = torch.rand(1, 3, 96, 96), torch.rand(1, 3, 96, 96)
    b[..., :48, :] = a[..., :48, :]  # same upper half, different mouth
    c = a.clone()
    c[..., :48, :] = 1 - c[..., :48, :]  # same mouth, different upper half
    with torch.no_grad():
        feats = model.encode_reference(ref)
        out_a, out_b, out_c = (model.generate(feats, x, mels) for x in (a, b, c))
    torch.testing.assert_close(out_a, out_b)  # the target's mouth cannot leak
    assert not torch.allclose(out_a, out_c)  # the pose does reach the output


def test_keep_visible_returns_the_visible_half_and_generates_the_rest() -> None:
    preset = get_preset("cpu-rt")
    assert preset.lipsync.generator.keep_visible  # every preset keeps the visible half
    model = create("cpu-rt").eval()
    ref, frames, mels = torch.rand(2, 3, 96, 96), torch.rand(2, 3, 96, 96), torch.randn(2, 1, 80, 16)
    with torch.no_grad():
        feats = model.encode_reference(ref)
        out = model.generate(feats, frames, mels)
        silent = model.silence(ref)
        model.talker.cfg = dataclasses.replace(model.talker.cfg, keep_visible=False)
        whole = model.generate(feats, frames, mels)
    assert torch.equal(out[..., :48, :], frames[..., :48, :])
    assert torch.equal(silent[..., :48, :], ref[..., :48, :])  # G_S too
    torch.testing.assert_close(out[..., 48:, :], whole[..., 48:, :])  # generated: the network's
    assert not torch.allclose(whole[..., :48, :], frames[..., :48, :])


def test_audio_encoder_is_frozen_and_everything_else_learns() -> None:
    model = create("cpu-rt").train()
    assert not model.audio_encoder.training  # batch norm statistics stay fixed
    ref, frames, mels = torch.rand(2, 3, 96, 96), torch.rand(2, 3, 96, 96), torch.randn(2, 1, 80, 16)
    model(ref, frames, mels).mean().backward()
    for name, p in model.named_parameters():
        if name.startswith("audio_encoder."):
            assert p.grad is None and not p.requires_grad, name
    talker_grads = [p.grad for n, p in model.named_parameters() if n.startswith("talker.")]
    silent_grads = [p.grad for n, p in model.named_parameters() if n.startswith("silent.")]
    assert all(g is not None for g in talker_grads) and all(g is not None for g in silent_grads)
    assert sum(float(g.abs().sum()) for g in talker_grads if g is not None) > 0


def test_load_audio_encoder_from_syncnet() -> None:
    preset = get_preset("cpu-rt")
    sync = AVSyncNet(preset.syncnet)
    model = LipSyncModel(preset.lipsync)
    model.load_audio_encoder(sync)
    mel = torch.randn(2, 1, 80, 16)
    sync.eval()
    with torch.no_grad():
        torch.testing.assert_close(model.audio_encoder(mel), sync.audio_encoder(mel))
    assert not any(p.requires_grad for p in model.audio_encoder.parameters())


def test_create_rejects_unknown_preset_and_override() -> None:
    with pytest.raises(UserError, match="unknown"):
        create("nope")
    with pytest.raises(UserError, match="override"):
        create("cpu-rt", not_a_field=1)
    assert create("cpu-rt", lookahead_ms=40.0).cfg.lookahead_ms == 40.0
