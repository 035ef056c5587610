"""The slightly shifted and scaled views of a reference crop that a session's reference features
are averaged over, and that a personal profile's fine-tune draws its references from.

The generator reads the reference's features at every level, down to the full-resolution one,
so a sub-pixel change in where the crop lands changes what it draws (benchmarks/RESULTS.md, "the
reference as the mean of shifted views"). The real-time session averages the features of the
first `Manifest.reference_views` of `VIEWS` (`realtime/pipeline/reference.py`); enroll can
fine-tune a profile on references drawn from the same views and the crop as it is, so the profile
too averages them (`stablesync/enroll/finetune.py`, not its default: RESULTS.md, session 36).
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

# (dx, dy, scale): shifts in crop sizes (1.5 px of a 96-px crop), scales about the crop's centre
_SHIFT = 1.5 / 96
VIEWS: tuple[tuple[float, float, float], ...] = (
    (-_SHIFT, -_SHIFT, 0.98),
    (_SHIFT, _SHIFT, 1.02),
    (0.0, _SHIFT, 1.0),
    (_SHIFT, 0.0, 0.98),
    (-_SHIFT, 0.0, 1.02),
    (0.0, -_SHIFT, 1.0),
    (_SHIFT, -_SHIFT, 1.0),
    (-_SHIFT, _SHIFT, 1.0),
)


def view_crop(crop: NDArray[np.uint8], view: tuple[float, float, float]) -> NDArray[np.uint8]:
    """One (S, S, 3) uint8 crop seen as `view` (a row of `VIEWS`): shifted and scaled about its
    centre, its borders repeated."""
    dx, dy, scale = view
    size = crop.shape[0]
    m = np.asarray(cv2.getRotationMatrix2D((size / 2.0, size / 2.0), 0.0, scale), np.float64)
    m[:, 2] += np.array([dx * size, dy * size])
    out = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out, np.uint8)


def view_crops(crop: NDArray[np.uint8], views: int) -> NDArray[np.uint8]:
    """(views, S, S, 3) uint8: the first `views` of `VIEWS` of one crop, or with 1 the crop as it is."""
    if not 1 <= views <= len(VIEWS):
        raise ValueError(f"reference views: expected 1 to {len(VIEWS)}, got {views}")
    if views == 1:
        return crop[None].copy()
    return np.stack([view_crop(crop, view) for view in VIEWS[:views]])
