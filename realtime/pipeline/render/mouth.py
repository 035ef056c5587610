"""The inside of the mouth: the only pixels taken from the generated crop.

Everything between the inner lips of the target shape is sampled from the generated crop
(teeth, tongue, the dark cavity), mapped triangle by triangle from the generated inner-lip
ring, then given the person's light and a mouth's colours: luma scaled to the frame's lips,
chroma kept on the warm side (red never below green), darker parts pulled toward the lips'
own colour.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.face.landmarks import LOWER_LIP_INNER, MOUTH_INNER, MOUTH_OUTER, UPPER_LIP_INNER
from stablesync.realtime.pipeline.render.piecewise import Box, Triangles, backward_maps
from stablesync.realtime.pipeline.render.shape import INNER_LOWER, INNER_UPPER

F32 = NDArray[np.float32]

# Skin beside and below the mouth (chin, cheeks): the brightest the inside of a mouth may be.
SKIN = (152, 199, 200, 205, 425, 206, 426, 50, 280)
TEETH_TO_SKIN = 0.9  # teeth at most as bright as this share of the skin's luma
# how much darker the inside of the mouth is right at the lips (at 0.45 the shade drew a dark
# ring around the inside of the mouth on soft photos, read as an outline)
SHADE = 0.25
SHADE_DEPTH = 0.4  # ... reaching full light this far in, in inner-lip gaps
WARMTH = 0.012  # teeth a little yellow, never blue: chroma at least this far from grey
OWN_INTERIOR = 0.85  # weight of the frame's own mouth interior when it is as open as the new one
LIP_TINT = 0.45  # share of the lips' own chroma in every inner-mouth pixel (more in dark ones)


def inner_triangles() -> Triangles:
    """Triangles (mesh indices) filling the inner-lip ring, two per pair of facing points."""
    tris = []
    for k in range(len(INNER_UPPER) - 1):
        u0, u1, l0, l1 = INNER_UPPER[k], INNER_UPPER[k + 1], INNER_LOWER[k], INNER_LOWER[k + 1]
        tris += [(u0, u1, l1), (u0, l1, l0)]
    return np.array(tris, np.int32)


def inner_polygon(points: F32) -> F32:
    return points[list(MOUTH_INNER)]


def _sample(image: NDArray[np.uint8], points: F32) -> F32:
    """Bilinear RGB samples of `image` at (N, 2) points."""
    x = points[:, 0].reshape(1, -1).astype(np.float32)
    y = points[:, 1].reshape(1, -1).astype(np.float32)
    out = cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return np.asarray(out[0], np.float32)


def soft_cap(y: F32, cap: float) -> F32:
    """`y` unchanged up to 70% of `cap`, then bending smoothly to approach `cap`."""
    knee = 0.7 * cap
    room = max(cap - knee, 1e-3)
    bent = knee + room * np.tanh((y - knee) / room)
    return np.asarray(np.where(y < knee, y, bent), np.float32)


def _luma(rgb: F32) -> F32:
    return np.asarray(rgb @ np.array([0.299, 0.587, 0.114], np.float32), np.float32)


def recolour(
    interior: F32, generated: NDArray[np.uint8], gen_points: F32, frame: NDArray[np.uint8], points: F32
) -> F32:
    """`interior` (H, W, 3) float RGB in the person's light and a mouth's colours.

    Luma is scaled by the ratio of the lips' luma in the frame to that in the generated crop
    (sampled on the lip rings), at most about the skin's; chroma (YCrCb) keeps Cb below grey and
    Cr high enough that red >= green (no teal teeth); the darker a pixel, the more its chroma is
    the frame lips' own."""
    rings = list(MOUTH_OUTER + MOUTH_INNER)
    lips_frame = _sample(frame, points[rings])
    lips_gen = _sample(generated, gen_points[rings])
    ratio = float(np.clip(_luma(lips_frame).mean() / max(_luma(lips_gen).mean(), 1.0), 0.6, 1.6))
    # float YCrCb in OpenCV's convention: all three in [0, 1], chroma centred on 0.5
    ycc = cv2.cvtColor(np.clip(interior / 255.0, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2YCrCb)
    lips_ycc = cv2.cvtColor((lips_frame[None] / 255.0).clip(0, 1).astype(np.float32), cv2.COLOR_RGB2YCrCb)
    lip_cr, lip_cb = float(lips_ycc[0, :, 1].mean()), float(lips_ycc[0, :, 2].mean())
    skin = float(_luma(_sample(frame, points[list(SKIN)])).mean()) / 255.0
    y = soft_cap(ycc[..., 0] * ratio, TEETH_TO_SKIN * skin)
    cb = np.minimum(ycc[..., 2], 0.5 - WARMTH)
    cr = np.maximum(ycc[..., 1], 0.5 + WARMTH + 0.17 * (0.5 - cb))
    dark = LIP_TINT + (1.0 - LIP_TINT) * np.clip(1.0 - y / 0.35, 0.0, 1.0) * 0.7
    cr = (1.0 - dark) * cr + dark * max(lip_cr, 0.5)
    cb = (1.0 - dark) * cb + dark * min(lip_cb, 0.5)
    out = cv2.cvtColor(np.dstack([y, cr, cb]).astype(np.float32), cv2.COLOR_YCrCb2RGB) * 255.0
    return np.asarray(np.clip(out, 0.0, 255.0), np.float32)


def _opening_px(points: F32) -> float:
    return float(np.linalg.norm(points[LOWER_LIP_INNER] - points[UPPER_LIP_INNER]))


def _shade(covered: NDArray[np.bool_], depth_px: float) -> F32:
    """Light falling off toward the lips inside the mouth: 1 - SHADE at the edge, 1 at `depth_px`."""
    if depth_px <= 0.5:
        return np.full(covered.shape, 1.0 - SHADE, np.float32)
    inside = np.pad(covered, 1).astype(np.uint8)
    dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)[1:-1, 1:-1]
    t = np.clip(dist / depth_px, 0.0, 1.0)
    return np.asarray(1.0 - SHADE * (1.0 - t * t * (3.0 - 2.0 * t)), np.float32)


def fill_interior(
    warped: NDArray[np.uint8],
    box: Box,
    frame: NDArray[np.uint8],
    points: F32,
    target: F32,
    generated: NDArray[np.uint8],
    gen_points: F32,
    feather_px: float,
) -> None:
    """Blends the generated inside of the mouth into `warped` (the box of the output, RGB,
    holding the frame's own inside of the mouth warped to the target), in place, under the
    target's inner-lip polygon, feathered inward by `feather_px`."""
    tris = inner_triangles()
    inner = Box.around(inner_polygon(target), box.x1, box.y1)
    inner = Box(max(inner.x0, box.x0), max(inner.y0, box.y0), inner.x1, inner.y1)
    if inner.empty:
        return
    map_x, map_y, covered = backward_maps(target, gen_points, tris, inner)
    if not covered.any():
        return
    interior = cv2.remap(generated, map_x, map_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE).astype(
        np.float32
    )
    interior = recolour(interior, generated, gen_points, frame, points)
    interior *= _shade(covered, SHADE_DEPTH * _opening_px(target))[..., None]
    # where the frame's own mouth is open, its own teeth (warped into the new shape beneath) show
    # through in the share its opening covers of the new one
    own = min(_opening_px(points) / max(_opening_px(target), 1e-3), 1.0) * OWN_INTERIOR
    alpha = covered.astype(np.float32) * (1.0 - own)
    if feather_px > 0:
        # about 0.5 on the polygon's edge, 1 a feather's width inside, 0 outside
        blurred = cv2.GaussianBlur(alpha, (0, 0), sigmaX=feather_px)
        alpha = np.clip((blurred - 0.25) * 2.0, 0.0, 1.0) * alpha
    view = warped[inner.y0 - box.y0 : inner.y1 - box.y0, inner.x0 - box.x0 : inner.x1 - box.x0]
    blended = alpha[..., None] * interior + (1.0 - alpha[..., None]) * view.astype(np.float32)
    view[:] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
