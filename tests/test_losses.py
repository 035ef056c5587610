import itertools
import math

import torch

from stablesync.losses import (
    adaptive_triplet_loss,
    feature_matching_loss,
    gan_loss,
    perceptual_standin_loss,
    plain_sync_loss,
    ssim,
    stabilized_sync_loss,
    sync_bce_loss,
)


def t(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


def test_stabilized_sync_loss_is_zero_when_generated_matches_ground_truth() -> None:
    y = torch.linspace(-0.9, 0.9, 19)
    d = torch.roll(y, 5)
    assert float(stabilized_sync_loss(y.clone(), y, d)) <= 1e-3


def test_stabilized_sync_loss_grows_strictly_with_the_gap() -> None:
    y, d = t(0.6), t(0.1)
    gaps = torch.linspace(0.0, 0.9, 50)
    values = [float(stabilized_sync_loss(y - g, y, d)) for g in gaps]
    assert all(b > a for a, b in itertools.pairwise(values))
    values_up = [
        float(stabilized_sync_loss((y + g).clamp(max=1.0), y, d)) for g in torch.linspace(0, 0.4, 20)
    ]
    assert all(b > a for a, b in itertools.pairwise(values_up))


def test_stabilized_sync_loss_is_finite_at_the_edges() -> None:
    for x, y, d in [(0.3, 0.5, 0.5), (0.5, 0.5, 0.5), (1.0, -1.0, 1.0), (-1.0, 1.0, -1.0), (1.0, 1.0, 1.0)]:
        value = stabilized_sync_loss(t(x), t(y), t(d))
        assert math.isfinite(float(value)), (x, y, d)
    x = t(0.2).requires_grad_()
    stabilized_sync_loss(x, t(0.9), t(0.9)).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_plain_sync_loss_decreases_with_similarity() -> None:
    values = [float(plain_sync_loss(t(s))) for s in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    assert all(b < a for a, b in itertools.pairwise(values))
    assert values[-1] == 0.0 and math.isfinite(values[0])


def test_sync_bce_prefers_high_similarity_for_positives() -> None:
    assert sync_bce_loss(t(0.9), t(1)) < sync_bce_loss(t(-0.9), t(1))
    assert sync_bce_loss(t(-0.9), t(0)) < sync_bce_loss(t(0.9), t(0))


def test_adaptive_triplet_loss_properties() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 16, 16, generator=g)
    reference = torch.rand(4, 3, 16, 16, generator=g)
    assert float(adaptive_triplet_loss(target, target, reference)) == 0.0  # ground truth: no loss
    copy = float(adaptive_triplet_loss(reference, target, reference))  # lip leaking: penalised
    assert copy > 0.3
    # margin adapts: a reference equal to the target stops pushing
    assert float(adaptive_triplet_loss(target + 0.01, target, target)) < 0.02
    # moving from the reference towards the target lowers the loss
    mid = 0.5 * target + 0.5 * reference
    assert float(adaptive_triplet_loss(mid, target, reference)) < copy


def test_gan_and_feature_losses() -> None:
    logits = torch.zeros(2, 1, 6, 6)
    assert float(gan_loss(logits + 1, real=True)) == 0.0 and float(gan_loss(logits, real=False)) == 0.0
    assert float(gan_loss(logits + 2, real=True, kind="hinge")) == 0.0
    assert float(gan_loss(logits - 2, real=False, kind="hinge")) == 0.0
    feats = [torch.ones(1, 2, 3, 3)]
    assert float(feature_matching_loss(feats, feats)) == 0.0


def test_ssim_and_perceptual_standin() -> None:
    a = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(ssim(a, a), torch.ones(2))
    assert float(perceptual_standin_loss(a, a)) < 1e-6
    noisy = (a + 0.3 * torch.randn_like(a)).clamp(0, 1)
    assert float(perceptual_standin_loss(noisy, a)) > 0.1
