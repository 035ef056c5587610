"""The reference face the generator copies the person's appearance from, encoded as the mean of
several slightly shifted and scaled views of one crop.

The generator reads the reference's features at every level, down to the full-resolution one,
so a sub-pixel change in where the crop lands changes what it draws: on one frame of a real video,
the crop placed 1 px differently (the same face) changed the generated mouth opening's spread
2.6x, and over 27 such placements of one photo it ranged 0.0095-0.026 eye distances. The mean of
the views' features changes about half as much with the placement (tests/test_reference.py), and
the mouth it draws follows the speech more consistently. How many views is the export's
(`Manifest.reference_views`): 8 for the shipped weights, 1 for personal profiles (enroll's
default; a profile fine-tuned on references drawn from the views says 8) and older exports.

The session encodes the views one call at a time (about 11 ms each on 2 CPU cores; one batch of
8 costs the same ~86 ms in all): a reference refreshed mid-stream then waits between frames'
inference calls instead of holding the inference thread for ~90 ms.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from stablesync.export.engine import ReferenceFeatures
from stablesync.face.reference_views import VIEWS, view_crops

__all__ = ["VIEWS", "mean_features", "reference_views"]

FloatArray = NDArray[np.float32]


def reference_views(crop: NDArray[np.uint8], views: int) -> FloatArray:
    """(views, 3, S, S) float crops in [0, 1] from one (S, S, 3) uint8 crop: the first `views` of `VIEWS`, or
    with 1 the crop as it is. How many is the export's (`Manifest.reference_views`): 8 for the shipped
    weights, 1 for enroll's profiles and exports that predate it. The real-face benchmark with 8
    against 1: benchmarks/RESULTS.md, "the reference as the mean of shifted views"."""
    return view_crops(crop, views).astype(np.float32).transpose(0, 3, 1, 2) / 255.0


def mean_features(per_view: Sequence[ReferenceFeatures]) -> ReferenceFeatures:
    """Each level's features (batch 1 per view) averaged over the views."""
    if not per_view:
        raise ValueError("mean_features: no views")
    levels = zip(*per_view, strict=True)
    return tuple(np.mean([np.asarray(f, np.float32) for f in level], axis=0) for level in levels)
