"""Puts the generated mouth back into the frame: inverse warp of the crop, a feathered lower-face
mask and colour matching, so no box edge shows.

Work is limited to the face's bounding box in the frame (the warp of the crop's corners), so
its cost does not grow with the camera's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.face import CropAlignment

F32 = NDArray[np.float32]


@dataclass(frozen=True)
class CompositeConfig:
    # Lower-face ellipse in crop fractions: centre and half axes (covers nostrils to chin).
    centre_x: float = 0.5
    centre_y: float = 0.76
    half_width: float = 0.30
    half_height: float = 0.22
    feather: float = 0.07  # Gaussian sigma of the mask edge, in crop fractions
    colour_match: bool = True


def lower_face_mask(size: int, cfg: CompositeConfig) -> F32:
    """(S, S) float32 in [0, 1]: 1 on the mouth and jaw, falling smoothly to 0, 0 at the crop edge."""
    mask = np.zeros((size, size), dtype=np.float32)
    centre = (round(cfg.centre_x * size), round(cfg.centre_y * size))
    axes = (round(cfg.half_width * size), round(cfg.half_height * size))
    cv2.ellipse(mask, centre, axes, 0.0, 0.0, 360.0, (1.0,), thickness=-1)
    sigma = max(cfg.feather * size, 0.5)
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma), dtype=np.float32)
    border = max(1, round(2 * sigma))
    mask[:border, :] = 0.0
    mask[-border:, :] = 0.0
    mask[:, :border] = 0.0
    mask[:, -border:] = 0.0
    return np.clip(mask, 0.0, 1.0)


def match_colour(generated: F32, original: F32, weight: F32) -> F32:
    """Shifts and scales each channel of `generated` so its weighted mean and spread under the mask
    match the original crop's (removes the model's tint and brightness drift)."""
    w = weight[..., None]
    total = float(w.sum()) + 1e-6
    mean_g = (generated * w).sum((0, 1)) / total
    mean_o = (original * w).sum((0, 1)) / total
    std_g = np.sqrt((((generated - mean_g) ** 2) * w).sum((0, 1)) / total) + 1e-3
    std_o = np.sqrt((((original - mean_o) ** 2) * w).sum((0, 1)) / total) + 1e-3
    scale = np.clip(std_o / std_g, 0.5, 2.0)
    return np.clip((generated - mean_g) * scale + mean_o, 0.0, 255.0).astype(np.float32)


class Compositor:
    def __init__(self, crop_size: int, cfg: CompositeConfig = CompositeConfig()) -> None:
        self.cfg = cfg
        self.crop_size = crop_size
        self.mask = lower_face_mask(crop_size, cfg)

    def composite(
        self,
        frame: NDArray[np.uint8],
        generated: NDArray[np.uint8],
        crop: NDArray[np.uint8],
        alignment: CropAlignment,
    ) -> NDArray[np.uint8]:
        """A copy of `frame` with the generated (S, S, 3) crop blended in under the feathered mask."""
        s = self.crop_size
        gen = generated.astype(np.float32)
        if self.cfg.colour_match:
            gen = match_colour(gen, crop.astype(np.float32), self.mask)
        h, w = frame.shape[:2]
        corners = np.array([[0, 0], [s, 0], [0, s], [s, s]], dtype=np.float64)
        m = alignment.to_frame
        mapped = corners @ m[:, :2].T + m[:, 2]
        x0, y0 = np.floor(mapped.min(0)).astype(int) - 1
        x1, y1 = np.ceil(mapped.max(0)).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        out = frame.copy()
        if x1 <= x0 or y1 <= y0:
            return out
        roi_m = m.copy()
        roi_m[:, 2] -= (x0, y0)
        size = (int(x1 - x0), int(y1 - y0))
        warped = cv2.warpAffine(gen, roi_m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        alpha = np.asarray(
            cv2.warpAffine(self.mask, roi_m, size, flags=cv2.INTER_LINEAR, borderValue=(0.0,))
        )[..., None]
        roi = out[y0:y1, x0:x1].astype(np.float32)
        out[y0:y1, x0:x1] = np.clip(alpha * warped + (1.0 - alpha) * roi + 0.5, 0, 255).astype(np.uint8)
        return out
