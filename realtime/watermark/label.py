"""The optional visible label: a small semi-opaque badge with a text in the bottom-right corner.

The badge (text and its dark box) is rendered once per frame size and blended into the corner
only, so it costs a fraction of a millisecond per frame.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

RgbImage = NDArray[np.uint8]


class Badge:
    def __init__(self, text: str, opacity: float = 0.75, height_share: float = 0.045) -> None:
        self.text = " ".join(text.split())
        self.opacity = opacity
        self.height_share = height_share  # text height as a share of the frame height
        self._rendered: dict[
            tuple[int, int], tuple[slice, slice, NDArray[np.float32], NDArray[np.float32]]
        ] = {}

    def _render(
        self, height: int, width: int
    ) -> tuple[slice, slice, NDArray[np.float32], NDArray[np.float32]]:
        font = cv2.FONT_HERSHEY_SIMPLEX
        (_, base_h), _ = cv2.getTextSize(self.text, font, 1.0, 2)
        scale = max(0.3, self.height_share * height / max(base_h, 1))
        thickness = max(1, round(scale * 1.5))
        (text_w, text_h), baseline = cv2.getTextSize(self.text, font, scale, thickness)
        pad = max(2, text_h // 3)
        box_h = min(height, text_h + baseline + 2 * pad)
        box_w = min(width, text_w + 2 * pad)
        patch = np.zeros((box_h, box_w, 3), np.uint8)
        cv2.putText(
            patch, self.text, (pad, pad + text_h), font, scale, (255, 255, 255), thickness, cv2.LINE_AA
        )
        margin = pad
        top = max(0, height - box_h - margin)
        left = max(0, width - box_w - margin)
        alpha = np.full((box_h, box_w, 1), self.opacity, np.float32)
        rows, cols = slice(top, top + box_h), slice(left, left + box_w)
        return rows, cols, patch.astype(np.float32) * alpha, 1.0 - alpha

    def draw(self, image: RgbImage) -> RgbImage:
        """A copy of `image` with the badge in its bottom-right corner."""
        key = (int(image.shape[0]), int(image.shape[1]))
        if key not in self._rendered:
            self._rendered[key] = self._render(*key)
        rows, cols, premultiplied, keep = self._rendered[key]
        out = image.copy()
        corner = out[rows, cols].astype(np.float32) * keep + premultiplied
        out[rows, cols] = np.clip(corner + 0.5, 0, 255).astype(np.uint8)
        return out
