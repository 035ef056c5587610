"""Measures of a lip-synced video against its source, at the frame's own resolution.

Everything here is read off the pictures with the face mesh (mediapipe, video mode), nothing
from the model. "Face height" is the distance from the forehead (mesh point 10) to the chin
(152); "mouth opening" is the inner-lip gap |13 - 14| divided by it.

- `opening`: the mouth opening per frame (NaN without a face).
- `lips_sharpness_ratio`: variance of the Laplacian of the grey image in the lips' box (the
  outer-lip ring's bounding box in the source, grown by 25%) of the output over the source's.
- `upper_psnr_db`: PSNR of the output against the source over the face above the nostrils (the
  convex hull of the mesh points above the line through the nostrils' base, 2/98/327), capped
  at 99 dB when identical.
- `straight_edge_frac`: the longest straight segment (probabilistic Hough, 1 px tolerance) on
  the boundary of the region where |output - source| exceeds 6 grey levels (opened by a disc of
  4% of the face height, so that the strip left by a real edge that moved does not count:
  only changed areas do), outside the lips (both frames' outer-lip rings grown by 15% of the
  face height) and outside the jaw line's sweep (the band between the source's jaw line and the
  output's, grown by 5% of the face height: a jaw that opens moves the face's own contour,
  whose straight stretches are the face's, not a seam), in face heights. A pasted box draws long
  straight boundaries across the skin; a smooth warp does not.
  `straight_edge_frac(..., exclude_jaw=False)` keeps the jaw line in (the first definition).
- `teal_share`: share of the output's lip-ring pixels (inside its outer-lip ring) whose green
  exceeds their red (teeth or lips turned teal).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.face.landmarks import JAW, LOWER_LIP_INNER, MOUTH_OUTER, UPPER_LIP_INNER

Image = NDArray[np.uint8]
Points = NDArray[np.float32]
FOREHEAD, CHIN = 10, 152
NOSTRIL_BASE = (2, 98, 327)


def face_height(points: Points) -> float:
    return float(np.linalg.norm(points[FOREHEAD, :2] - points[CHIN, :2]))


def opening(points: Points) -> float:
    gap = float(np.linalg.norm(points[UPPER_LIP_INNER, :2] - points[LOWER_LIP_INNER, :2]))
    return gap / max(face_height(points), 1e-6)


def _lips_box(points: Points, w: int, h: int, grow: float = 0.25) -> tuple[int, int, int, int]:
    ring = points[list(MOUTH_OUTER), :2]
    lo, hi = ring.min(0), ring.max(0)
    pad = (hi - lo) * grow / 2
    x0, y0 = np.floor(lo - pad).astype(int)
    x1, y1 = np.ceil(hi + pad).astype(int)
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), w), min(int(y1), h)


def lips_sharpness_ratio(source: Image, output: Image, points: Points) -> float:
    x0, y0, x1, y1 = _lips_box(points, source.shape[1], source.shape[0])

    def sharpness(img: Image) -> float:
        grey = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F).var())

    return sharpness(output) / max(sharpness(source), 1e-6)


def upper_face_mask(points: Points, shape: tuple[int, int]) -> NDArray[np.bool_]:
    """Pixels of the face above the line through the nostrils' base."""
    xy = points[:, :2]
    base = xy[list(NOSTRIL_BASE)]
    right, left = base[1], base[2]
    direction = (left - right) / max(float(np.linalg.norm(left - right)), 1e-6)
    normal = np.array([-direction[1], direction[0]])  # points down the face
    if normal @ (xy[CHIN] - base.mean(0)) < 0:
        normal = -normal
    above = (xy - base.mean(0)) @ normal < -1.0
    hull = cv2.convexHull(np.round(xy[above]).astype(np.int32))
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, hull, (1,))
    return mask.astype(bool)


def upper_psnr_db(source: Image, output: Image, points: Points) -> float:
    mask = upper_face_mask(points, (source.shape[0], source.shape[1]))
    diff = source[mask].astype(np.float64) - output[mask].astype(np.float64)
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    return 99.0 if mse <= 1e-10 else min(99.0, 10.0 * np.log10(255.0**2 / mse))


def _lips_mask(points: Points, shape: tuple[int, int], grow_px: float) -> NDArray[np.uint8]:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(MOUTH_OUTER), :2]).astype(np.int32)], (1,))
    k = max(1, round(grow_px))
    return np.asarray(cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))))


def _jaw_sweep(points: Points, output_points: Points | None, shape: tuple[int, int], grow_px: float) -> Image:
    """The band the jaw line swept between the two frames (each quad between consecutive jaw
    points and their moved places), grown by `grow_px`."""
    mask = np.zeros(shape, np.uint8)
    src = points[list(JAW), :2]
    out = output_points[list(JAW), :2] if output_points is not None else src
    for i in range(len(JAW) - 1):
        quad = np.stack([src[i], src[i + 1], out[i + 1], out[i]])
        cv2.fillConvexPoly(mask, np.round(cv2.convexHull(quad.astype(np.float32))).astype(np.int32), (1,))
    k = max(1, round(grow_px))
    return np.asarray(cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1))))


def straight_edge_frac(
    source: Image,
    output: Image,
    points: Points,
    output_points: Points | None = None,
    exclude_jaw: bool = True,
) -> float:
    h, w = source.shape[:2]
    fh = face_height(points)
    diff = np.abs(output.astype(np.int16) - source.astype(np.int16)).max(-1).astype(np.uint8)
    changed = (cv2.GaussianBlur(diff, (3, 3), 0) > 6).astype(np.uint8)
    # a region, not a line: thin strips are real edges that moved, which a warp is meant to do
    k = max(3, round(0.04 * fh) | 1)
    changed = cv2.morphologyEx(changed, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    lips = _lips_mask(points, (h, w), 0.15 * fh)
    if output_points is not None:
        lips |= _lips_mask(output_points, (h, w), 0.15 * fh)
    if exclude_jaw:
        lips |= _jaw_sweep(points, output_points, (h, w), 0.05 * fh)
    boundary = cv2.morphologyEx(changed, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    boundary[lips > 0] = 0
    min_len = max(4, round(0.02 * fh))
    lines = cv2.HoughLinesP(
        boundary * 255, 1, np.pi / 180, threshold=min_len, minLineLength=min_len, maxLineGap=1
    )
    if lines is None:
        return 0.0
    lengths = np.hypot(lines[:, 0, 2] - lines[:, 0, 0], lines[:, 0, 3] - lines[:, 0, 1])
    return float(lengths.max() / max(fh, 1e-6))


def teal_share(output: Image, output_points: Points) -> float:
    mask = np.zeros(output.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(output_points[list(MOUTH_OUTER), :2]).astype(np.int32)], (1,))
    pixels = output[mask > 0].astype(np.int16)
    if pixels.size == 0:
        return 0.0
    return float(np.mean(pixels[:, 1] > pixels[:, 0]))


@dataclass(frozen=True)
class FrameMeasures:
    opening_source: float
    opening_output: float
    sharpness_ratio: float
    upper_psnr_db: float
    straight_edge_frac: float
    straight_edge_frac_with_jaw: float  # the jaw line's sweep counted too
    teal_share: float


def measure_frame(
    source: Image, output: Image, source_points: Points | None, output_points: Points | None
) -> FrameMeasures | None:
    """All per-frame measures; None when the source has no face."""
    if source_points is None:
        return None
    nan = float("nan")
    return FrameMeasures(
        opening_source=opening(source_points),
        opening_output=opening(output_points) if output_points is not None else nan,
        sharpness_ratio=lips_sharpness_ratio(source, output, source_points),
        upper_psnr_db=upper_psnr_db(source, output, source_points),
        straight_edge_frac=straight_edge_frac(source, output, source_points, output_points),
        straight_edge_frac_with_jaw=straight_edge_frac(
            source, output, source_points, output_points, exclude_jaw=False
        ),
        teal_share=teal_share(output, output_points) if output_points is not None else nan,
    )
