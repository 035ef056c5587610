"""The detector's settings (`DetectConfig`), apart from the detector so that its parts (the
period search) read them without importing it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DetectConfig:
    threshold_z: float = 6.0  # sync peak height (standard deviations) that counts as marked
    min_period_px: float = 28.0  # searched periods of the pattern in the analysed frames
    max_period_frames: int = 30  # frames used to find the period (every `period_stride`-th)
    period_stride: int = 3
    whiten_sigma_bins: float = 3.0  # blur of the power spectrum dividing it (flattens the picture's)
    period_candidates: int = 4  # autocorrelation peaks tried by folding the whole clip's frames
    highpass_box_px: int = 15  # mean filter subtracted, at the tile's scale (keeps the ring)
    fold_px: int = 64  # the folded tile's side (the pattern's period resampled to this)
    antialias_sigma_px: float = 0.5  # blur before shrinking, in folded-tile pixels
    segment_s: float = 1.0  # length of the per-second decisions
    common_heights_px: tuple[int, ...] = (360, 480, 540, 720, 1080)  # periods tried for crops
    refine_steps: tuple[float, ...] = (0.008, 0.004, 0.002)  # relative period steps around the best
    repair_bits: int = 10  # when the CRC fails, flip up to `repair_flips` of the least sure bits
    repair_flips: int = 2
