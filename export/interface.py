"""The one interface every inference backend implements (onnxruntime CPU/CUDA/TensorRT EP,
native TensorRT, torch).

All arrays are numpy float32, batched on the first axis:
- `encode_reference(images)`: (B, 3, S, S) RGB crops in [0, 1] -> ReferenceFeatures, one array
  per generator level, (B, C_i, S/2^i, S/2^i). Run once per reference face and cached.
- `generate(features, frames, mels)`: features of batch B (from one reference repeated, or
  from several sessions stacked with `stack_features`), (B, 3, S, S) aligned target crops in
  [0, 1], (B, 1, n_mels, window_frames) mel windows -> (B, 3, S, S) generated crops in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from stablesync.export.manifest import Manifest

FloatArray = NDArray[np.float32]
ReferenceFeatures = tuple[FloatArray, ...]


class Engine(Protocol):
    manifest: Manifest
    backend: str  # e.g. "ort-cpu"

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures: ...

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray: ...


def stack_features(items: Sequence[ReferenceFeatures]) -> ReferenceFeatures:
    """Concatenates the features of several references (e.g. sessions) along the batch axis."""
    return tuple(np.concatenate(level, axis=0) for level in zip(*items, strict=True))


def split_features(features: ReferenceFeatures) -> list[ReferenceFeatures]:
    """The inverse of stack_features: one single-item ReferenceFeatures per batch entry."""
    batch = features[0].shape[0]
    return [tuple(level[i : i + 1] for level in features) for i in range(batch)]
