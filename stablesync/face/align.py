"""The model's crop: a similarity transform that puts the eyes and nose tip at fixed places.

Only rigid upper-face points (eye centres, nose tip) define the crop, so the crop does not
move when the jaw opens. In the crop (S x S) the eyes sit at y = 0.42 S, x = 0.34 S / 0.66 S
and the nose tip at (0.5 S, 0.62 S): the lower half (masked for the generator) then holds the
nostrils, lips and chin.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.face.landmarks import NOSE_TIP, eye_centres

# (x, y) as fractions of the crop size: subject's right eye, left eye, nose tip.
TEMPLATE = np.array([[0.34, 0.42], [0.66, 0.42], [0.50, 0.62]], dtype=np.float64)


def anchor_points(points: NDArray[np.float32]) -> NDArray[np.float64]:
    right, left = eye_centres(points)
    return np.stack([right, left, points[NOSE_TIP, :2]]).astype(np.float64)


def similarity(src: NDArray[np.float64], dst: NDArray[np.float64]) -> NDArray[np.float64]:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src to dst, 2x3."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = float((sig * sign).sum() / max(s.var(0).sum(), 1e-12))
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def crop_transform(points: NDArray[np.float32], size: int) -> NDArray[np.float64]:
    """2x3 affine from frame pixels to crop pixels for landmarks `points` (N, 2+) in pixels."""
    return similarity(anchor_points(points), TEMPLATE * size)


def paste_back_transform(m: NDArray[np.float64]) -> NDArray[np.float64]:
    """The inverse 2x3 affine (crop pixels -> frame pixels)."""
    return cv2.invertAffineTransform(m).astype(np.float64)


@dataclass(frozen=True)
class CropAlignment:
    size: int
    to_crop: NDArray[np.float64]  # 2x3, frame -> crop
    to_frame: NDArray[np.float64]  # 2x3, crop -> frame

    @classmethod
    def from_landmarks(cls, points: NDArray[np.float32], size: int) -> CropAlignment:
        m = crop_transform(points, size)
        return cls(size=size, to_crop=m, to_frame=paste_back_transform(m))

    def points_to_crop(self, points: NDArray[np.float32]) -> NDArray[np.float32]:
        xy = points[:, :2].astype(np.float64)
        return (xy @ self.to_crop[:, :2].T + self.to_crop[:, 2]).astype(np.float32)


def align_crop(frame_rgb: NDArray[np.uint8], alignment: CropAlignment) -> NDArray[np.uint8]:
    """The S x S RGB crop of the face (bilinear, border replicated)."""
    out = cv2.warpAffine(
        frame_rgb,
        alignment.to_crop,
        (alignment.size, alignment.size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return cast(NDArray[np.uint8], out)
