"""Mouth landmarks of face crops with mediapipe, and the measures built on them.

The crops are small (96 px), so each is upscaled to 192 px and given a replicated border
(a quarter of its size) before the face mesh runs in still-image mode; the landmarks are
mapped back to crop pixels. Ground truth and generated crops go through the same procedure,
so their landmark errors cancel in LMD.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.face import MOUTH_INNER, MOUTH_OUTER, FaceMeshTracker, mouth_opening

UPSCALE_PX = 192
PAD_FRACTION = 0.25
MOUTH_POINTS = list(MOUTH_OUTER) + list(MOUTH_INNER)


class CropLandmarks:
    def __init__(self) -> None:
        self._tracker = FaceMeshTracker(max_faces=1, video=False)

    def __call__(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        """(T, S, S, 3) uint8 -> (T, 468, 2) crop-pixel landmarks, NaN where no face was found."""
        out = np.full((len(crops), 468, 2), np.nan, dtype=np.float32)
        for i, crop in enumerate(crops):
            s = crop.shape[0]
            big = cv2.resize(crop, (UPSCALE_PX, UPSCALE_PX), interpolation=cv2.INTER_LINEAR)
            pad = int(PAD_FRACTION * UPSCALE_PX)
            img = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            faces = self._tracker.detect(img)
            if faces:
                out[i] = (faces[0].points[:468, :2] - pad) * (s / UPSCALE_PX)
        return out

    def close(self) -> None:
        self._tracker.close()


def openings(landmarks: NDArray[np.float32]) -> NDArray[np.float64]:
    """(T, 468, 2) -> (T,) inner-lip gap / eye distance (NaN where landmarks are missing)."""
    return np.array([np.nan if np.isnan(p).any() else mouth_opening(p) for p in landmarks])


def lmd(generated: NDArray[np.float32], target: NDArray[np.float32], size: int) -> float:
    """Mouth landmark distance: mean L2 distance of the 40 lip points, in pixels of a 96 px crop,
    over frames where both have landmarks (NaN if none)."""
    g, t = generated[:, MOUTH_POINTS], target[:, MOUTH_POINTS]
    ok = ~(np.isnan(g).any((1, 2)) | np.isnan(t).any((1, 2)))
    if not ok.any():
        return float("nan")
    d = np.linalg.norm(g[ok] - t[ok], axis=-1).mean() * (96.0 / size)
    return float(d)


def correlation(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    """Pearson correlation over frames where both are known; NaN when either is constant."""
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 3 or np.std(a[ok]) < 1e-9 or np.std(b[ok]) < 1e-9:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])
