"""The corpus's face stills: real photographs available offline, and procedurally drawn faces.

A still is an RGB image with mediapipe's 468 landmarks found on it (static mode). Identities:
- `astronaut`: scikit-image's `data.astronaut()` (Eileen Collins, public domain NASA photo);
- `grace_hopper`: matplotlib's sample `grace_hopper.jpg` (public domain US Navy photo);
- `proc-<k>`: procedural face number k (`stablesync.data.procedural`).
Each clip draws a variant of its identity: photos get a random similarity transform (scale,
rotation, position, mirror) and colour changes (brightness, contrast, saturation, hue, gamma).
Splits are disjoint by identity: the astronaut is a training face, Grace Hopper a test face,
procedural face k belongs to val when k % 10 == 1, test when k % 10 == 2, train otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Final

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.data.procedural import draw_face
from stablesync.data.text import Split
from stablesync.errors import UserError
from stablesync.face import FaceMeshTracker
from stablesync.face.landmarks import eye_centres

REAL_FACES: Final[Mapping[str, Split]] = MappingProxyType({"astronaut": "train", "grace_hopper": "test"})
PROCEDURAL_IDS = 1000


@dataclass(frozen=True)
class FaceStill:
    face: str  # identity, e.g. "astronaut" or "proc-17"
    image: NDArray[np.uint8]  # (S, S, 3) RGB
    points: NDArray[np.float32]  # (468, 2) landmarks in pixels


def face_split(face: str) -> Split:
    if face in REAL_FACES:
        return REAL_FACES[face]
    k = int(face.removeprefix("proc-"))
    return "val" if k % 10 == 1 else "test" if k % 10 == 2 else "train"


def pick_face(rng: np.random.Generator, split: Split, real_fraction: float = 0.3) -> str:
    """A face identity of `split`: a real photo with probability `real_fraction` when it has one."""
    real = [name for name, s in REAL_FACES.items() if s == split]
    if real and rng.random() < real_fraction:
        return str(real[rng.integers(len(real))])
    residue = {"val": [1], "test": [2]}.get(split, [0, 3, 4, 5, 6, 7, 8, 9])
    k = int(rng.integers(PROCEDURAL_IDS // 10)) * 10 + int(residue[rng.integers(len(residue))])
    return f"proc-{k}"


@cache
def real_photo(name: str) -> NDArray[np.uint8]:
    """The original photograph, RGB uint8 (cached per process: it never changes)."""
    if name == "astronaut":
        from skimage import data

        return np.ascontiguousarray(data.astronaut()[..., :3])  # type: ignore[no-untyped-call]
    if name == "grace_hopper":
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise UserError(f"{path}: cannot read matplotlib's sample photo; reinstall matplotlib")
        return np.ascontiguousarray(bgr[..., ::-1])
    raise ValueError(f"unknown real face {name!r}")


def _colour_jitter(img: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.uint8]:
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-4, 4)) % 180
    hsv[..., 1] *= rng.uniform(0.7, 1.25)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32) / 255.0
    out = out ** rng.uniform(0.8, 1.25)
    out = (out - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
    out *= rng.uniform(0.95, 1.05, 3)  # white balance
    return np.clip(out * 255.0, 0, 255).astype(np.uint8)


def _place_photo(
    photo: NDArray[np.uint8], points: NDArray[np.float32], size: int, rng: np.random.Generator
) -> NDArray[np.uint8]:
    """A similarity transform putting the eyes at a random but plausible place in a size x size frame."""
    right, left = eye_centres(points)
    src_mid, src_dist = (right + left) / 2.0, float(np.linalg.norm(left - right))
    src_angle = float(np.degrees(np.arctan2(left[1] - right[1], left[0] - right[0])))
    dist = size * rng.uniform(0.2, 0.26)
    scale = dist / max(src_dist, 1e-6)
    angle = src_angle + rng.uniform(-6.0, 6.0)
    m = np.asarray(cv2.getRotationMatrix2D((float(src_mid[0]), float(src_mid[1])), angle, scale), np.float64)
    target = np.array([size * 0.5 + rng.uniform(-0.05, 0.05) * size, size * rng.uniform(0.38, 0.44)])
    m[:, 2] += target - src_mid
    out: NDArray[np.uint8] = np.asarray(
        cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT), np.uint8
    )
    if rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def make_still(
    face: str, rng: np.random.Generator, tracker: FaceMeshTracker, size: int = 256, attempts: int = 8
) -> FaceStill:
    """A variant of identity `face` at `size` x `size` with its landmarks (mediapipe, static mode).

    Photos and drawn faces alike get a random placement (scale, rotation, position, mirror) and
    colour changes; a drawn face's identity (shape, skin, hair, eyes) depends on its number only.
    """
    if face in REAL_FACES:
        source = real_photo(face)
    else:
        source = draw_face(np.random.default_rng(int(face.removeprefix("proc-"))), size * 2)
    found = tracker.detect(source)
    if not found:
        raise RuntimeError(f"mediapipe finds no face in the {face} source image")
    for _ in range(attempts):
        image = _colour_jitter(_place_photo(source, found[0].points, size, rng), rng)
        faces = tracker.detect(image)
        if faces:
            return FaceStill(face, image, faces[0].points[:, :2].astype(np.float32).copy())
    raise RuntimeError(f"no trackable variant of face {face} after {attempts} attempts")
