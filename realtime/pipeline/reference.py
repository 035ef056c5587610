"""The reference face the generator copies the person's appearance from, encoded as the mean of
several slightly shifted and scaled views of one crop.

The generator reads the reference's features at every level, down to the full-resolution one,
so a sub-pixel change in where the crop lands changes what it draws: on one frame of a real video,
the crop placed 1 px differently (the same face) changed the generated mouth opening's spread
2.6x, and over 27 such placements of one photo it ranged 0.0095-0.026 eye distances. The mean of
the views' features changes about half as much with the placement (tests/test_reference.py), and
the mouth it draws follows the speech more consistently. How many views is the export's
(`Manifest.reference_views`): 8 for the shipped weights, 1 for personal profiles.

The session encodes the views one call at a time (about 11 ms each on 2 CPU cores; one batch of
8 costs the same ~86 ms in all): a reference refreshed mid-stream then waits between frames'
inference calls instead of holding the inference thread for ~90 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.export.engine import ReferenceFeatures

FloatArray = NDArray[np.float32]

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


def reference_views(crop: NDArray[np.uint8], views: int) -> FloatArray:
    """(views, 3, S, S) float crops in [0, 1] from one (S, S, 3) uint8 crop: the first `views`
    of `VIEWS`, or with 1 the crop as it is. How many is the export's (`Manifest.reference_views`):
    8 for the shipped weights, 1 for personal profiles and exports that predate it. The real-face
    benchmark with 8 against 1: benchmarks/RESULTS.md, "the reference as the mean of shifted views"."""
    if not 1 <= views <= len(VIEWS):
        raise ValueError(f"reference views: expected 1 to {len(VIEWS)}, got {views}")
    if views == 1:
        return crop.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    size = crop.shape[0]
    centre = (size / 2.0, size / 2.0)
    out = np.empty((views, 3, size, size), np.float32)
    for k, (dx, dy, scale) in enumerate(VIEWS[:views]):
        m = np.asarray(cv2.getRotationMatrix2D(centre, 0.0, scale), np.float64)
        m[:, 2] += np.array([dx * size, dy * size])
        view = cv2.warpAffine(crop, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[k] = view.astype(np.float32).transpose(2, 0, 1) / 255.0
    return out


def mean_features(per_view: Sequence[ReferenceFeatures]) -> ReferenceFeatures:
    """Each level's features (batch 1 per view) averaged over the views."""
    if not per_view:
        raise ValueError("mean_features: no views")
    levels = zip(*per_view, strict=True)
    return tuple(np.mean([np.asarray(f, np.float32) for f in level], axis=0) for level in levels)
