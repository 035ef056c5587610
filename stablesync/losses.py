"""The paper's losses and the usual image-synthesis losses (torch).

Conventions: similarities are AVSyncNet cosines in [-1, 1], shaped (B,); images in [0, 1].

Perceptual stand-in: no pretrained VGG can be downloaded on our machines, so the perceptual
term is (1 - SSIM) on the face crop plus feature matching on the discriminator's layers
(`feature_matching_loss`). SSIM rewards local structure (edges of lips and teeth) the way a
perceptual loss does, without a pretrained network; feature matching compares images in a
feature space learned on our own data. Both are differentiable and cheap on CPU.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def stabilized_sync_loss(
    x: torch.Tensor, y: torch.Tensor, d: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """L_ss = -log(1 - (|x-y| + eps) / (|x-y| + |y-d| + eps)), batch mean.

    x = AVsim(generated, audio), y = AVsim(ground truth, audio), d = AVsim(identity reference,
    audio). It penalises the gap to the ground truth's own sync score rather than the
    absolute score, scaled by how far the reference is from the ground truth: x = y gives
    -log(1 - eps/(|y-d| + eps)) ~ 0. The ratio is clamped below 1 so the loss stays finite
    when y = d (then any gap is as bad as it gets and the loss is -log(eps')).
    """
    gap = (x - y).abs()
    ratio = (gap + eps) / (gap + (y - d).abs() + eps)
    return -torch.log1p(-ratio.clamp(max=1.0 - 1e-4)).mean()


def plain_sync_loss(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Wav2Lip's sync loss for the ablation: -log of the similarity mapped to (0, 1].

    Wav2Lip's SyncNet embeddings are ReLU outputs, so its cosine lies in [0, 1]; ours lie in
    [-1, 1] and are mapped with p = (x + 1) / 2 before the -log (clamped at eps).
    """
    p = ((x + 1.0) / 2.0).clamp(min=eps, max=1.0)
    return -torch.log(p).mean()


def sync_bce_loss(similarity: torch.Tensor, is_synced: torch.Tensor) -> torch.Tensor:
    """AVSyncNet's training loss: binary cross-entropy of the cosine mapped to (0, 1)."""
    p = ((similarity + 1.0) / 2.0).clamp(1e-6, 1.0 - 1e-6)
    return F.binary_cross_entropy(p, is_synced.to(p.dtype))


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().flatten(1).mean(1)  # (B,) mean absolute difference


def adaptive_triplet_loss(
    generated: torch.Tensor,
    target: torch.Tensor,
    reference: torch.Tensor,
    alpha: float = 0.5,
    max_margin: float = 0.2,
) -> torch.Tensor:
    """Pulls the generated face to the ground truth and pushes it from the identity reference.

    With d(a, b) the per-sample mean absolute difference (on whatever region or features the
    caller passes, e.g. the lower half of the face):

        m   = min(alpha * d(target, reference), max_margin)       # adaptive margin
        L_at = mean(relu(d(generated, target) - d(generated, reference) + m))

    The margin adapts to how different ground truth and reference are: when they are nearly the
    same (a closed mouth in both), m -> 0 and the loss stops pushing the generated face away
    from a reference that is in fact right. With alpha < 1 the ground truth itself has zero
    loss (d(t,t) - d(t,r) + alpha d(t,r) <= 0), so the optimum is unchanged; a copy of the
    reference costs (1 + alpha) d(t, r) (bounded margin aside).
    """
    margin = (alpha * _distance(target, reference)).clamp(max=max_margin)
    return F.relu(_distance(generated, target) - _distance(generated, reference) + margin).mean()


def pixel_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.l1_loss(generated, target)


def gan_loss(
    logits: torch.Tensor,
    real: bool,
    kind: Literal["hinge", "lsgan"] = "lsgan",
    for_discriminator: bool = True,
) -> torch.Tensor:
    """Least-squares (default) or hinge GAN loss on patch logits."""
    if kind == "lsgan":
        return F.mse_loss(logits, torch.full_like(logits, 1.0 if real else 0.0))
    if not for_discriminator:
        return -logits.mean()
    return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()


def feature_matching_loss(fake_feats: list[torch.Tensor], real_feats: list[torch.Tensor]) -> torch.Tensor:
    """L1 between discriminator features of generated and real images (real side detached)."""
    losses = [F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats, strict=True)]
    return torch.stack(losses).mean()


def ssim(
    a: torch.Tensor, b: torch.Tensor, window: int = 7, c1: float = 0.01**2, c2: float = 0.03**2
) -> torch.Tensor:
    """Mean SSIM per sample (B,) with a uniform window, images in [0, 1]."""
    pad = window // 2
    mu_a = F.avg_pool2d(a, window, 1, pad, count_include_pad=False)
    mu_b = F.avg_pool2d(b, window, 1, pad, count_include_pad=False)
    var_a = F.avg_pool2d(a * a, window, 1, pad, count_include_pad=False) - mu_a**2
    var_b = F.avg_pool2d(b * b, window, 1, pad, count_include_pad=False) - mu_b**2
    cov = F.avg_pool2d(a * b, window, 1, pad, count_include_pad=False) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def perceptual_standin_loss(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - SSIM, batch mean (the image half of the perceptual stand-in)."""
    return (1.0 - ssim(generated, target)).mean()
