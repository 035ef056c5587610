"""MediaPipe's short-range face detector (BlazeFace, 128x128): anchors, box decoding and the
weighted non-maximum suppression of mediapipe's `face_detection_short_range` graph.

Pure numpy: the tensors come from whichever runtime ran the .tflite model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

INPUT_SIZE = 128
# SsdAnchorsCalculator options of the graph: 4 layers, strides 8/16/16/16, one fixed-size
# anchor plus one interpolated per layer; layers of equal stride share one feature map.
_STRIDES = (8, 16, 16, 16)
_SCORE_CLIP = 100.0
_NMS_IOU = 0.3


@dataclass(frozen=True)
class Detection:
    box: NDArray[np.float32]  # (4,) x0, y0, x1, y1, relative to the detector's square input
    keypoints: NDArray[np.float32]  # (6, 2) eyes, nose tip, mouth, ear tragions
    score: float


def anchors() -> NDArray[np.float32]:
    """(896, 2) anchor centres in [0, 1], in the order of the model's outputs."""
    centres: list[tuple[float, float]] = []
    layer = 0
    while layer < len(_STRIDES):
        stride = _STRIDES[layer]
        same = sum(1 for s in _STRIDES[layer:] if s == stride)
        per_cell = 2 * same
        cells = INPUT_SIZE // stride
        for y in range(cells):
            for x in range(cells):
                centres += [((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell
        layer += same
    return np.asarray(centres, dtype=np.float32)


def decode(
    regressors: NDArray[np.float32],
    scores: NDArray[np.float32],
    anchor_xy: NDArray[np.float32],
    min_score: float,
) -> list[Detection]:
    """Detections above `min_score` from the raw (896, 16) and (896,) outputs, after NMS."""
    logits = np.clip(scores.reshape(-1).astype(np.float64), -_SCORE_CLIP, _SCORE_CLIP)
    prob = 1.0 / (1.0 + np.exp(-logits))
    keep = np.nonzero(prob >= min_score)[0]
    if keep.size == 0:
        return []
    raw = regressors.reshape(-1, 16)[keep] / INPUT_SIZE
    centre = anchor_xy[keep]
    xy = raw[:, 0:2] + centre
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([xy - half, xy + half], axis=1)
    kps = raw[:, 4:16].reshape(-1, 6, 2) + centre[:, None, :]
    return _weighted_nms(boxes.astype(np.float32), kps.astype(np.float32), prob[keep])


def _iou(box: NDArray[np.float32], others: NDArray[np.float32]) -> NDArray[np.float32]:
    lo = np.maximum(box[:2], others[:, :2])
    hi = np.minimum(box[2:], others[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    area = np.prod(box[2:] - box[:2])
    areas = np.prod(others[:, 2:] - others[:, :2], axis=1)
    union = area + areas - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def _weighted_nms(
    boxes: NDArray[np.float32], kps: NDArray[np.float32], scores: NDArray[np.float64]
) -> list[Detection]:
    """mediapipe's WEIGHTED algorithm: each cluster (IoU > 0.3 with its best box) becomes the
    score-weighted mean of its boxes and keypoints, with the best score."""
    order = np.argsort(-scores, kind="stable")
    out: list[Detection] = []
    while order.size:
        best = order[0]
        overlap = _iou(boxes[best], boxes[order]) > _NMS_IOU
        cluster = order[overlap]
        w = scores[cluster][:, None]
        box = (boxes[cluster] * w).sum(0) / w.sum()
        kp = (kps[cluster] * w[:, :, None]).sum(0) / w.sum()
        out.append(
            Detection(box=box.astype(np.float32), keypoints=kp.astype(np.float32), score=float(scores[best]))
        )
        order = order[~overlap]
    return out
