"""Validation on the held-aside seconds: the personal profile against the shipped weights.

Both exports drive the real renderer (`stablesync.benchmarks.offline_render`, the offline session of
`stablesync run --fast`) over the held-aside frames with their own audio, and each output is
compared with the real frame it replaced. Per weights:
- `mouth_psnr_db`, `mouth_ssim`: of the mouth region (the real frame's outer-lip box grown to
  twice its size, resized to 64x64) against the real frame;
- `lmd`: mean distance of the 40 lip landmarks of the output from the real frame's, in pixels
  of a face 96 px high (forehead to chin);
- the real-face measures (`stablesync.evaluation.real_face`): `r_real` (Pearson r of the
  output's mouth opening with the real one), `amplitude_ratio` (their std ratio),
  `teal_frames` (frames whose lip ring is more than 1% teal), `sharpness_ratio` (median),
  `upper_psnr_db` (minimum), `straight_edge_frac` (maximum).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

Image = NDArray[np.uint8]
Points = NDArray[np.float32]
RATE_HZ = 16_000
MOUTH_PX = 64
TEAL_SHARE = 0.01


@dataclass(frozen=True)
class Segment:
    """Frames of a video from `start_s` (at most `max_s` long) with the audio under them."""

    frames: list[Image]
    pts_s: list[float]  # from 0 at the segment's first frame
    audio: NDArray[np.float32]  # 16 kHz mono, from the segment's first frame
    fps: float


def _fit(image: Image, max_side: int) -> Image:
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    nh, nw = (round(h * scale) // 2 * 2, round(w * scale) // 2 * 2)
    if (nh, nw) == (h, w):
        return image
    return np.asarray(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def read_segment(
    video: Path, audio: NDArray[np.float32], start_s: float, max_s: float, max_side: int = 512
) -> Segment:
    """The frames shown from `start_s` on (scaled so the longer side is at most `max_side`)."""
    from stablesync.media import iter_video_frames

    frames, pts = [], []
    first: float | None = None
    for image, t_s in iter_video_frames(video):
        if t_s + 1e-6 < start_s:
            continue
        first = t_s if first is None else first
        if t_s - first >= max_s:
            break
        frames.append(_fit(image, max_side))
        pts.append(t_s - first)
    if not frames or first is None:
        return Segment([], [], np.zeros(0, np.float32), 25.0)
    a0 = round(first * RATE_HZ)
    fps = (len(pts) - 1) / pts[-1] if len(pts) > 1 and pts[-1] > 0 else 25.0
    sound = audio[a0 : a0 + round((pts[-1] + 1.0 / fps) * RATE_HZ)]
    return Segment(frames, pts, np.ascontiguousarray(sound, dtype=np.float32), fps)


def landmarks(frames: list[Image]) -> list[Points | None]:
    from stablesync.face import FaceMeshTracker

    with FaceMeshTracker(video=True) as tracker:
        out: list[Points | None] = []
        for image in frames:
            faces = tracker.detect(image)
            out.append(faces[0].points[:, :2].astype(np.float32) if faces else None)
    return out


def mouth_box(points: Points, shape: tuple[int, ...], grow: float = 1.0) -> tuple[int, int, int, int]:
    """The outer-lip ring's box grown by `grow` of its size (square, inside the frame)."""
    from stablesync.face.landmarks import MOUTH_OUTER

    ring = points[list(MOUTH_OUTER)]
    centre = (ring.min(0) + ring.max(0)) / 2
    half = float((ring.max(0) - ring.min(0)).max()) * (1 + grow) / 2
    x0, y0 = np.floor(centre - half).astype(int)
    x1, y1 = np.ceil(centre + half).astype(int)
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), shape[1]), min(int(y1), shape[0])


def mouth_crop(image: Image, points: Points, size: int = MOUTH_PX) -> Image:
    x0, y0, x1, y1 = mouth_box(points, image.shape)
    return np.asarray(cv2.resize(image[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA), np.uint8)


def measure(
    source: list[Image],
    output: list[Image],
    source_points: list[Points | None],
    output_points: list[Points | None],
) -> dict[str, float]:
    from stablesync.evaluation.images import psnr, ssim
    from stablesync.evaluation.mouth import correlation, lmd
    from stablesync.evaluation.real_face import face_height, measure_frame

    rows = [
        (i, measure_frame(source[i], output[i], source_points[i], output_points[i]))
        for i in range(len(source))
    ]
    ok = [(i, m) for i, m in rows if m is not None]
    if not ok:
        return {"frames": 0.0}
    idx = [i for i, _ in ok]
    real = np.array([m.opening_source for _, m in ok])
    out = np.array([m.opening_output for _, m in ok])
    pts_real = [p for p in (source_points[i] for i in idx) if p is not None]  # all: measured frames
    real_mouths = np.stack([mouth_crop(source[i], p) for i, p in zip(idx, pts_real, strict=True)])
    out_mouths = np.stack([mouth_crop(output[i], p) for i, p in zip(idx, pts_real, strict=True)])
    nan = np.full((468, 2), np.nan, np.float32)
    marks_out = np.stack([q if (q := output_points[i]) is not None else nan for i in idx])
    marks_real = np.stack(pts_real)
    height = float(np.mean([face_height(p) for p in pts_real]))
    finite = out[np.isfinite(out)]
    return {
        "frames": float(len(ok)),
        "mouth_psnr_db": psnr(out_mouths, real_mouths),
        "mouth_ssim": ssim(out_mouths, real_mouths),
        "lmd": lmd(marks_out.astype(np.float32), marks_real.astype(np.float32), round(height)),
        "r_real": correlation(out, real),
        "amplitude_ratio": float(np.std(finite) / max(np.std(real), 1e-9))
        if len(finite) > 2
        else float("nan"),
        "teal_frames": float(sum(m.teal_share > TEAL_SHARE for _, m in ok)),
        "sharpness_ratio": float(np.median([m.sharpness_ratio for _, m in ok])),
        "upper_psnr_db": float(min(m.upper_psnr_db for _, m in ok)),
        "straight_edge_frac": float(max(m.straight_edge_frac for _, m in ok)),
    }


# True when a larger value is better; False when a smaller one is; ratios want to be near 1
HIGHER_IS_BETTER = {
    "mouth_psnr_db": True,
    "mouth_ssim": True,
    "lmd": False,
    "r_real": True,
    "teal_frames": False,
    "upper_psnr_db": True,
    "straight_edge_frac": False,
    # driven by another recording (`benchmarks/enroll.py`): r with that speech, and its margin
    # over r with the video's own speech
    "r_new": True,
    "margin": True,
}


NEAR_ONE = ("sharpness_ratio", "amplitude_ratio")


def better(personal: dict[str, float], shipped: dict[str, float]) -> dict[str, bool]:
    """Per measure: does the personal model do at least as well as the shipped weights?"""
    out = {}
    for key in NEAR_ONE:
        a, b = personal.get(key, float("nan")), shipped.get(key, float("nan"))
        if np.isfinite(a) and np.isfinite(b) and a > 0 and b > 0:
            out[key] = bool(abs(np.log(a)) <= abs(np.log(b)))
    for key, higher in HIGHER_IS_BETTER.items():
        a, b = personal.get(key, float("nan")), shipped.get(key, float("nan"))
        if np.isfinite(a) and np.isfinite(b):
            out[key] = bool(a >= b if higher else a <= b)
    return out


@dataclass(frozen=True)
class Comparison:
    report: dict[str, Any]
    personal: list[Image]
    shipped: list[Image]
    source_points: list[Points | None]


def compare(personal_dir: Path, shipped_dir: Path, segment: Segment, run_id: int | None = None) -> Comparison:
    """Both weights rendered over `segment` and measured against its frames; one watermark run id
    for both renders (`run_id`, or a random one)."""
    import secrets

    from stablesync.benchmarks.offline_render import render_offline

    run_id = secrets.randbits(32) if run_id is None else run_id

    source_points = landmarks(segment.frames)
    results: dict[str, dict[str, float]] = {}
    images: dict[str, list[Image]] = {}
    for name, weights in (("personal", personal_dir), ("shipped", shipped_dir)):
        rendered = render_offline(str(weights), segment.frames, segment.pts_s, segment.audio, run_id=run_id)
        images[name] = rendered.images
        results[name] = measure(segment.frames, rendered.images, source_points, landmarks(rendered.images))
        results[name]["lip_synced_frames"] = float(rendered.modes.count("lipsync"))
    report: dict[str, Any] = {
        "held_out_s": round(len(segment.frames) / segment.fps, 2),
        "frames": len(segment.frames),
        **results,
        "personal_at_least_as_good": better(results["personal"], results["shipped"]),
    }
    return Comparison(report, images["personal"], images["shipped"], source_points)


def contact_sheet(path: Path, segment: Segment, cmp: Comparison, columns: int = 6) -> None:
    """Rows real / shipped / personal of the mouth region at `columns` evenly spaced frames."""
    with_face = [i for i, p in enumerate(cmp.source_points) if p is not None]
    picks = [
        with_face[k] for k in np.linspace(0, len(with_face) - 1, min(columns, len(with_face))).astype(int)
    ]
    size, label_px = 128, 90
    rows = []
    for name, frames in (("real", segment.frames), ("shipped", cmp.shipped), ("personal", cmp.personal)):
        tiles = []
        for i in picks:
            p = cmp.source_points[i]
            assert p is not None
            tiles.append(mouth_crop(frames[i], p, size))
        label = np.full((size, label_px, 3), 255, np.uint8)
        cv2.putText(label, name, (4, size // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        rows.append(np.hstack([label, *tiles]) if tiles else label)
    sheet = np.vstack(rows)
    cv2.imwrite(str(path), np.ascontiguousarray(sheet[:, :, ::-1]))


def preview(path: Path, segment: Segment, frames: list[Image]) -> None:
    """The personal model's output over the held-aside seconds, with their audio."""
    from stablesync.media import Mp4Writer

    if not frames:
        return
    h, w = frames[0].shape[:2]
    writer = Mp4Writer(path, segment.fps, (w // 2 * 2, h // 2 * 2), audio_rate_hz=RATE_HZ)
    try:
        for image in frames:
            writer.write(image[: h // 2 * 2, : w // 2 * 2])
        writer.close(segment.audio)
    except BaseException:
        writer.abort()
        raise
