"""Procedurally drawn faces: shape, skin tone, hair, eyes, lighting and background vary with a seed.

Drawn with OpenCV and soft (blurred) shading, larger than the frames they end up in (the
placement in `faces.make_still` downsamples them), so mediapipe's face mesh finds them like
photographs. Everything comes from one numpy Generator,
so a seed always draws the same face.
"""

from __future__ import annotations

import cv2
import numpy as np
from numpy.typing import NDArray

# Skin tones (RGB), light to dark.
SKIN_TONES = (
    (243, 214, 189),
    (234, 192, 160),
    (222, 172, 135),
    (198, 145, 105),
    (168, 115, 80),
    (128, 84, 56),
    (96, 62, 42),
)
HAIR_COLOURS = ((30, 24, 20), (70, 45, 30), (120, 80, 45), (190, 150, 90), (150, 150, 150), (110, 40, 25))
IRIS_COLOURS = ((70, 45, 30), (40, 90, 140), (60, 110, 70), (110, 80, 50), (30, 25, 20))


def _soft(mask: NDArray[np.float32], sigma_px: float) -> NDArray[np.float32]:
    k = int(sigma_px * 3) * 2 + 1
    return np.asarray(cv2.GaussianBlur(mask, (k, k), sigma_px), dtype=np.float32)


def _blend(img: NDArray[np.float32], mask: NDArray[np.float32], colour: NDArray[np.float32]) -> None:
    img[:] = img * (1.0 - mask[..., None]) + colour[None, None, :] * mask[..., None]


def _ellipse_mask(
    shape: tuple[int, int], centre: tuple[float, float], axes: tuple[float, float], angle_deg: float = 0.0
) -> NDArray[np.float32]:
    m = np.zeros(shape, dtype=np.float32)
    cv2.ellipse(
        m,
        (int(centre[0]), int(centre[1])),
        (max(int(axes[0]), 1), max(int(axes[1]), 1)),
        angle_deg,
        0,
        360,
        (1.0,),
        -1,
        cv2.LINE_AA,
    )
    return m


def draw_face(rng: np.random.Generator, size: int = 256, supersample: int = 1) -> NDArray[np.uint8]:
    """One frontal face, RGB uint8 (size, size, 3), drawn at `supersample` times the size."""
    s = size * supersample
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    # Background: a two-colour gradient with a little texture.
    c0 = rng.uniform(40, 220, 3).astype(np.float32)
    c1 = rng.uniform(40, 220, 3).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    g = np.clip(0.5 + (xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle), 0, 1)
    img = c0 * (1 - g[..., None]) + c1 * g[..., None]
    img += rng.normal(0, 4, (s // 8, s // 8, 1)).repeat(8, 0).repeat(8, 1).astype(np.float32)

    skin = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], np.float32) * rng.uniform(0.92, 1.06, 3)
    skin = skin.astype(np.float32)
    hair = np.array(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], np.float32)
    cx = s * rng.uniform(0.47, 0.53)
    cy = s * rng.uniform(0.50, 0.56)
    fw = s * rng.uniform(0.21, 0.26)  # half width of the face
    fh = fw * rng.uniform(1.25, 1.45)  # half height
    shape = (s, s)

    # Neck and shoulders.
    neck = np.zeros(shape, np.float32)
    cv2.rectangle(neck, (int(cx - fw * 0.5), int(cy)), (int(cx + fw * 0.5), s), (1.0,), -1)
    _blend(img, _soft(neck, 3), skin * 0.8)
    shirt = _ellipse_mask(shape, (cx, s * 1.08), (fw * 2.2, s * 0.2))
    _blend(img, _soft(shirt, 3), rng.uniform(20, 230, 3).astype(np.float32))
    # Long hair behind the head.
    long_hair = rng.random() < 0.4
    if long_hair:
        back = _ellipse_mask(shape, (cx, cy + fh * 0.2), (fw * 1.35, fh * 1.15))
        _blend(img, _soft(back, 4), hair * 0.8)
    # Ears.
    for side in (-1, 1):
        ear = _ellipse_mask(shape, (cx + side * fw * 0.97, cy - fh * 0.02), (fw * 0.16, fh * 0.2))
        _blend(img, _soft(ear, 2), skin * 0.9)
    # Face with shading: darker towards the edge, light from a random side.
    face = _soft(_ellipse_mask(shape, (cx, cy), (fw, fh)), 3)
    dx, dy = (xx * s - cx) / fw, (yy * s - cy) / fh
    r2 = np.clip(dx**2 + dy**2, 0, 1)
    light = rng.uniform(-0.5, 0.5)
    shade = (1.0 - 0.28 * r2**1.5) * (1.0 + 0.12 * light * dx)
    face_col = skin[None, None, :] * shade[..., None]
    img = img * (1 - face[..., None]) + face_col * face[..., None]
    # Cheeks, chin shadow.
    chin = _soft(_ellipse_mask(shape, (cx, cy + fh * 0.92), (fw * 0.45, fh * 0.12)), 8) * 0.25
    _blend(img, chin, skin * 0.7)
    for side in (-1, 1):
        cheek = _soft(
            _ellipse_mask(shape, (cx + side * fw * 0.55, cy + fh * 0.2), (fw * 0.22, fh * 0.14)), 10
        )
        _blend(img, cheek * 0.15, np.array([220, 120, 110], np.float32))

    eye_y = cy - fh * rng.uniform(0.08, 0.16)
    eye_dx = fw * rng.uniform(0.40, 0.47)
    eye_w = fw * rng.uniform(0.20, 0.25)
    eye_h = eye_w * rng.uniform(0.42, 0.55)
    iris = np.array(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))], np.float32)
    brow_h = rng.uniform(0.5, 0.8)
    for side in (-1, 1):
        ex = cx + side * eye_dx
        socket = _soft(_ellipse_mask(shape, (ex, eye_y - eye_h * 0.3), (eye_w * 1.4, eye_h * 1.6)), 8)
        _blend(img, socket * 0.3, skin * 0.65)
        white = _ellipse_mask(shape, (ex, eye_y), (eye_w, eye_h))
        _blend(img, _soft(white, 1.2), np.array([235, 232, 225], np.float32))
        iris_m = _ellipse_mask(shape, (ex, eye_y), (eye_h * 0.9, eye_h * 0.9)) * white
        _blend(img, _soft(iris_m, 1), iris)
        pupil = _ellipse_mask(shape, (ex, eye_y), (eye_h * 0.4, eye_h * 0.4)) * white
        _blend(img, pupil, np.array([10, 10, 10], np.float32))
        glint = _ellipse_mask(shape, (ex + eye_h * 0.25, eye_y - eye_h * 0.3), (eye_h * 0.12, eye_h * 0.12))
        _blend(img, glint, np.array([250, 250, 250], np.float32))
        lid = np.zeros(shape, np.float32)
        cv2.ellipse(
            lid,
            (int(ex), int(eye_y)),
            (int(eye_w), int(eye_h)),
            0,
            180,
            360,
            (1.0,),
            max(2, int(eye_h * 0.25)),
            cv2.LINE_AA,
        )
        _blend(img, _soft(lid, 1), skin * 0.35)
        brow = np.zeros(shape, np.float32)
        by = eye_y - eye_h * (1.6 + brow_h)
        cv2.ellipse(
            brow,
            (int(ex), int(by + eye_h * 0.8)),
            (int(eye_w * 1.25), int(eye_h * 0.9)),
            0,
            200 if side < 0 else 190,
            350 if side < 0 else 340,
            (1.0,),
            max(3, int(eye_h * 0.35)),
            cv2.LINE_AA,
        )
        _blend(img, _soft(brow, 2) * 0.9, hair * 0.9)

    # Nose: a soft shadow along one side, nostrils and a highlight.
    nose_y = cy + fh * rng.uniform(0.22, 0.3)
    nose_w = fw * rng.uniform(0.18, 0.24)
    ridge = np.zeros(shape, np.float32)
    cv2.line(
        ridge,
        (int(cx - nose_w * 0.35), int(eye_y + eye_h)),
        (int(cx - nose_w * 0.45), int(nose_y - nose_w * 0.3)),
        (1.0,),
        max(2, int(nose_w * 0.25)),
        cv2.LINE_AA,
    )
    _blend(img, _soft(ridge, 5) * 0.35, skin * 0.6)
    tip = _soft(_ellipse_mask(shape, (cx, nose_y - nose_w * 0.2), (nose_w * 0.7, nose_w * 0.5)), 6)
    _blend(img, tip * 0.25, skin * 1.1)
    for side in (-1, 1):
        nostril = _ellipse_mask(shape, (cx + side * nose_w * 0.45, nose_y), (nose_w * 0.22, nose_w * 0.12))
        _blend(img, _soft(nostril, 1.5) * 0.85, skin * 0.35)
    under = _soft(_ellipse_mask(shape, (cx, nose_y + nose_w * 0.25), (nose_w * 0.9, nose_w * 0.18)), 5)
    _blend(img, under * 0.3, skin * 0.6)

    # Mouth (closed): upper lip, lower lip, the line between them.
    mouth_y = nose_y + (cy + fh - nose_y) * rng.uniform(0.36, 0.42)
    mouth_w = fw * rng.uniform(0.36, 0.46)
    lip_col = skin * np.array([0.85, 0.55, 0.55], np.float32) * rng.uniform(0.85, 1.05)
    upper = _ellipse_mask(shape, (cx, mouth_y), (mouth_w, mouth_w * 0.22))
    upper[int(mouth_y) :, :] = 0
    lower = _ellipse_mask(shape, (cx, mouth_y), (mouth_w * 0.92, mouth_w * 0.30))
    lower[: int(mouth_y), :] = 0
    _blend(img, _soft(upper + lower, 1.5), lip_col)
    line = np.zeros(shape, np.float32)
    cv2.ellipse(
        line,
        (int(cx), int(mouth_y - mouth_w * 0.05)),
        (int(mouth_w), int(mouth_w * 0.08)),
        0,
        0,
        180,
        (1.0,),
        max(2, int(mouth_w * 0.05)),
        cv2.LINE_AA,
    )
    _blend(img, _soft(line, 1) * 0.8, lip_col * 0.4)

    # Hair on top: a cap over the forehead, a fringe line, sometimes short.
    if rng.random() < 0.9:
        cap = _ellipse_mask(shape, (cx, cy - fh * 0.35), (fw * 1.08, fh * 0.8))
        cap[int(cy - fh * rng.uniform(0.45, 0.6)) :, :] = 0
        if long_hair:
            for side in (-1, 1):
                cap += _ellipse_mask(shape, (cx + side * fw * 1.0, cy - fh * 0.1), (fw * 0.2, fh * 0.6))
        cap = np.clip(cap, 0, 1)
        _blend(img, _soft(cap, 3), hair)
    # Global lighting and sensor noise.
    gain = rng.uniform(0.85, 1.1)
    img = img * gain + rng.normal(0, 2.0, img.shape).astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    if supersample != 1:
        out = np.asarray(cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA), np.uint8)
    return out
