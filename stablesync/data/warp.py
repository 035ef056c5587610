"""Animating a still face: a landmark-driven piecewise-affine warp of mouth, jaw and eyelids.

The still's mediapipe landmarks plus a ring of fixed image-border points are triangulated once
(Delaunay). Per frame the landmarks move (lips closed then opened by the jaw, widened or
rounded, eyelids lowered for blinks, the whole face moved by a small head motion); each output
pixel is mapped back through the affine transform of the triangle it falls in (one `remap`).
Inside the moved inner-lip contour the mouth cavity, upper and lower teeth and the tongue are
drawn when the mouth is open. The moved landmarks are the frame's ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy.spatial import Delaunay

from stablesync.face.landmarks import MOUTH_INNER, MOUTH_OUTER, eye_distance

# Halves of the lip rings (mediapipe indices, subject's right corner first).
UPPER_OUTER = MOUTH_OUTER[1:10]
LOWER_OUTER = MOUTH_OUTER[11:]
UPPER_INNER = MOUTH_INNER[1:10]
LOWER_INNER = MOUTH_INNER[11:]
CORNERS = (61, 291, 78, 308)
# Eyelids (subject's right, left): upper lid points and lower lid points.
UPPER_LIDS = ((246, 161, 160, 159, 158, 157, 173), (466, 388, 387, 386, 385, 384, 398))
LOWER_LIDS = ((7, 163, 144, 145, 153, 154, 155), (249, 390, 373, 374, 380, 381, 382))

MAX_JAW_DROP = 0.33  # inner-lip gap at jaw = 1, in eye distances


def _triangle_affines(
    dst: NDArray[np.float64], src: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per triangle the (3, 2) matrix A with [x, y, 1] @ A = source point, for (n, 3, 2) corners.

    The inverse of [[x0, y0, 1], [x1, y1, 1], [x2, y2, 1]] in closed form (adjugate / det):
    ~50x faster than a batched `np.linalg.solve` of many 3x3 systems. Degenerate (collapsed)
    triangles are flagged False and get a zero matrix.
    """
    x0, y0 = dst[:, 0, 0], dst[:, 0, 1]
    x1, y1 = dst[:, 1, 0], dst[:, 1, 1]
    x2, y2 = dst[:, 2, 0], dst[:, 2, 1]
    det = x0 * (y1 - y2) + x1 * (y2 - y0) + x2 * (y0 - y1)
    ok = np.abs(det) > 1e-6
    inv_det = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    inv = np.empty((len(dst), 3, 3))
    inv[:, 0] = np.stack([y1 - y2, y2 - y0, y0 - y1], axis=1)
    inv[:, 1] = np.stack([x2 - x1, x0 - x2, x1 - x0], axis=1)
    inv[:, 2] = np.stack([x1 * y2 - x2 * y1, x2 * y0 - x0 * y2, x0 * y1 - x1 * y0], axis=1)
    inv *= inv_det[:, None, None]
    return inv @ src, ok


@dataclass(frozen=True)
class Pose:
    """One frame's animation parameters."""

    jaw: float  # 0 closed .. 1 open
    width: float  # 0.5 relaxed
    rounding: float  # 0 relaxed
    blink: float  # 0 open eyes .. 1 closed
    head: NDArray[np.float64]  # 2x3 affine applied to the face (small rotation, shift, scale)


class FaceAnimator:
    """Renders frames of one still with moving mouth, jaw and eyelids."""

    def __init__(self, image: NDArray[np.uint8], points: NDArray[np.float32]) -> None:
        self.image = image
        h, w = image.shape[:2]
        self.size = (w, h)
        self.points = points[:, :2].astype(np.float64)
        n = 8
        border = [(x, y) for x in np.linspace(-2, w + 1, n) for y in (-2.0, h + 1.0)]
        border += [(x, y) for y in np.linspace(-2, h + 1, n)[1:-1] for x in (-2.0, w + 1.0)]
        self.border = np.array(border, dtype=np.float64)
        all_src = np.concatenate([self.points, self.border])
        self.src = all_src
        self.triangles = Delaunay(all_src).simplices.astype(np.int32)
        self.eye_dist_px = eye_distance(points)
        self._setup_regions()
        self._grid_x, self._grid_y = np.meshgrid(
            np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)
        )

    def _setup_regions(self) -> None:
        p = self.points
        d = self.eye_dist_px
        right, left = p[[33, 133]].mean(0), p[[263, 362]].mean(0)
        ax = (left - right) / max(np.linalg.norm(left - right), 1e-6)  # face x axis
        ay = np.array([-ax[1], ax[0]])  # face y axis (down)
        self.axes = np.stack([ax, ay])
        upper_in, lower_in = p[list(UPPER_INNER)], p[list(LOWER_INNER)]
        self.mouth_centre = np.concatenate([upper_in, lower_in]).mean(0)
        self.rest_gap = float(np.linalg.norm(p[13] - p[14]))
        rel = (p - self.mouth_centre) @ self.axes.T  # (468, 2) in face axes, pixels
        u, v = rel[:, 0], rel[:, 1]
        half_mouth = max(float(np.linalg.norm(p[61] - p[291])) / 2.0, 1e-3)
        self.half_mouth = half_mouth
        chin_v = float(rel[152, 1])
        face_half_w = max(float(np.abs(rel[[234, 454], 0]).max()), 1e-3)
        # Lower face weight: 1 below the mouth line, fading to 0 towards the cheeks and jaw angles.
        lateral = np.clip(1.0 - (u / (face_half_w * 0.95)) ** 2, 0.0, 1.0)
        below = np.clip(v / (0.12 * d) + 0.5, 0.0, 1.0)
        self.w_jaw = lateral * below * (v < chin_v + 0.3 * d)
        # Upper face around the mouth: small upward motion of the upper lip.
        self.w_upper = np.zeros(len(p))
        self.w_lower = np.zeros(len(p))
        for idx in UPPER_OUTER + UPPER_INNER:
            self.w_upper[idx] = 1.0
        for idx in LOWER_OUTER + LOWER_INNER:
            self.w_lower[idx] = 1.0
            self.w_jaw[idx] = 1.0
        # Lip region weight for width and rounding: lips and the skin right around them.
        dist = np.sqrt((u / (half_mouth * 1.5)) ** 2 + (v / (0.35 * d)) ** 2)
        self.w_lips = np.clip(1.3 - dist, 0.0, 1.0)
        for idx in MOUTH_OUTER + MOUTH_INNER:
            self.w_lips[idx] = 1.0
        self.rel_u = u
        self.chin_v = chin_v
        # Closing the still's own gap: upper inner lip down, lower inner lip up to the midline.
        self.close_upper = np.zeros(len(p))
        self.close_lower = np.zeros(len(p))
        for idx in UPPER_INNER:
            self.close_upper[idx] = 1.0
        for idx in UPPER_OUTER:
            self.close_upper[idx] = 0.5
        for idx in LOWER_INNER:
            self.close_lower[idx] = 1.0
        for idx in LOWER_OUTER:
            self.close_lower[idx] = 0.5
        self.lid_pairs = []
        for upper, lower in zip(UPPER_LIDS, LOWER_LIDS, strict=True):
            self.lid_pairs.append((np.array(upper), p[list(lower)].mean(0)))

    def moved_points(self, pose: Pose) -> NDArray[np.float64]:
        """The 468 landmarks for `pose`, in output pixels."""
        p = self.points.copy()
        d = self.eye_dist_px
        ax, ay = self.axes
        # Close the rest gap (the still may show an open mouth or teeth).
        half_gap = self.rest_gap / 2.0
        p += np.outer(self.close_upper * half_gap, ay) - np.outer(self.close_lower * half_gap, ay)
        drop = pose.jaw * MAX_JAW_DROP * d
        p += np.outer(self.w_jaw * drop * 0.85, ay) - np.outer(self.w_upper * drop * 0.15, ay)
        # Width: lips stretch sideways around the mouth centre; rounding pulls them in.
        stretch = (pose.width - 0.5) * 0.35 - pose.rounding * 0.28
        p += np.outer(self.w_lips * self.rel_u * stretch, ax)
        # Rounding also pushes the lips slightly outwards vertically (protrusion).
        prot = pose.rounding * 0.04 * d
        p += np.outer(self.w_upper * -prot + self.w_lower * prot, ay)
        for upper, lower_mean in self.lid_pairs:
            target = p[upper] + pose.blink * 0.92 * (lower_mean - p[upper])
            target[:, 0] = p[upper, 0]
            p[upper] = target
        head = pose.head
        return p @ head[:, :2].T + head[:, 2]

    def render(self, pose: Pose) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
        """(frame RGB uint8, landmarks (468, 2) float32) for `pose`."""
        dst_pts = self.moved_points(pose)
        dst = np.concatenate([dst_pts, self.border])
        w, h = self.size
        tri_dst = dst[self.triangles]  # (n, 3, 2)
        tri_src = self.src[self.triangles]
        affine, ok = _triangle_affines(tri_dst, tri_src)
        ids = np.full((h, w), -1, dtype=np.int32)
        # Rasterise triangle ids; triangles drawn later win on shared edges.
        order = np.nonzero(ok)[0]
        fixed = np.round(tri_dst * 16).astype(np.int32)
        for t in order:
            cv2.fillConvexPoly(ids, fixed[t], (int(t),), lineType=cv2.LINE_8, shift=4)
        # Pixels no triangle covers (none in practice: the border ring encloses the frame) keep
        # their place: an extra identity matrix at index n.
        identity = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]])
        coeffs = np.concatenate([affine, identity]).reshape(-1, 6).T.astype(np.float32)  # (6, n + 1)
        flat = np.where(ids >= 0, ids, len(affine)).ravel()
        a00, a01, a10, a11, a20, a21 = (np.take(c, flat).reshape(h, w) for c in coeffs)
        gx, gy = self._grid_x, self._grid_y
        map_x = gx * a00 + gy * a10 + a20
        map_y = gx * a01 + gy * a11 + a21
        frame: NDArray[np.uint8] = np.asarray(
            cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT), np.uint8
        )
        self._draw_mouth(frame, dst_pts)
        return frame, dst_pts.astype(np.float32)

    def _draw_mouth(self, frame: NDArray[np.uint8], pts: NDArray[np.float64]) -> None:
        gap = float(np.linalg.norm(pts[13] - pts[14]))
        if gap < 0.8:
            return
        d = self.eye_dist_px
        ring = pts[list(MOUTH_INNER)]
        x0, y0 = np.floor(ring.min(0)).astype(int) - 3
        x1, y1 = np.ceil(ring.max(0)).astype(int) + 4
        h, w = frame.shape[:2]
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            return
        sub = frame[y0:y1, x0:x1].astype(np.float32)
        mask = np.zeros(sub.shape[:2], np.float32)
        local = np.round((ring - [x0, y0]) * 16).astype(np.int32)
        cv2.fillPoly(mask, [local], (1.0,), lineType=cv2.LINE_AA, shift=4)
        yy = np.arange(y0, y1, dtype=np.float32)[:, None] * np.ones((1, x1 - x0), np.float32)
        upper_y = float(pts[13, 1])
        lower_y = float(pts[14, 1])
        depth = np.clip((yy - upper_y) / max(lower_y - upper_y, 1.0), 0.0, 1.0)
        xx = np.arange(x0, x1, dtype=np.float32)[None, :] * np.ones((y1 - y0, 1), np.float32)
        mid_x = float(pts[13, 0] + pts[14, 0]) / 2.0
        half_w = max(float(np.abs(ring[:, 0] - mid_x).max()), 1.0)
        side = np.clip(np.abs(xx - mid_x) / half_w, 0.0, 1.0)  # 0 centre .. 1 corners
        shade = (1.0 - 0.55 * side**2)[..., None]  # darker towards the corners
        cavity = np.stack([95 - 45 * depth, 30 - 12 * depth, 35 - 12 * depth], axis=-1)
        colour = cavity * shade
        # tongue: a rounded reddish shape rising from the lower lip
        tongue_top = lower_y - 0.35 * gap
        tongue = np.clip((yy - tongue_top) / 2.0, 0.0, 1.0) * np.clip(1.0 - side * 1.3, 0.0, 1.0)
        colour = (
            colour * (1 - tongue[..., None]) + np.array([165, 70, 75], np.float32) * tongue[..., None] * shade
        )
        # upper teeth: a band under the upper lip, narrower than the mouth, slightly shaded
        teeth_h = min(0.07 * d, 0.32 * gap)
        teeth_up = np.clip((upper_y + teeth_h - yy) / 1.0, 0.0, 1.0) * np.clip((0.85 - side) * 6.0, 0.0, 1.0)
        colour = colour * (1 - teeth_up[..., None]) + np.array([228, 222, 205], np.float32) * teeth_up[
            ..., None
        ] * (1.0 - 0.35 * side[..., None])
        if gap > 0.2 * d:
            lower_h = min(0.04 * d, 0.12 * gap)
            teeth_lo = np.clip((yy - (lower_y - lower_h)) / 1.0, 0.0, 1.0) * np.clip(
                (0.7 - side) * 6.0, 0.0, 1.0
            )
            colour = (
                colour * (1 - teeth_lo[..., None])
                + np.array([200, 192, 178], np.float32) * teeth_lo[..., None]
            )
        soft = cv2.GaussianBlur(mask, (3, 3), 0.6)[..., None]
        frame[y0:y1, x0:x1] = np.clip(sub * (1 - soft) + colour * soft, 0, 255).astype(np.uint8)
