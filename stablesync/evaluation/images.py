"""Image metrics on the aligned face crop (uint8 RGB, the whole crop)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def psnr(generated: NDArray[np.uint8], target: NDArray[np.uint8]) -> float:
    """Mean per-frame PSNR in dB of (T, S, S, 3) uint8 videos (identical frames count as 100 dB)."""
    diff = generated.astype(np.float64) - target.astype(np.float64)
    mse = (diff**2).reshape(len(diff), -1).mean(1)
    return float(np.mean(10.0 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-10))))


def ssim(generated: NDArray[np.uint8], target: NDArray[np.uint8]) -> float:
    """Mean per-frame SSIM (scikit-image, Gaussian-free 7x7 window, over the RGB channels)."""
    from skimage.metrics import structural_similarity

    values = [
        structural_similarity(g, t, channel_axis=-1, data_range=255)  # type: ignore[no-untyped-call]
        for g, t in zip(generated, target, strict=True)
    ]
    return float(np.mean(values))
