"""Checks of a synthetic corpus: do the lips follow the speech, does the tracker find every face?

- `envelope_correlation`: Pearson correlation between a clip's `mouth_open` and the speech
  envelope (RMS of the wav over 40 ms windows centred on each video frame, smoothed with a
  3-frame triangular filter), one value per clip.
- `detection_rate`: the fraction of a clip's decoded video frames in which
  `stablesync.face.FaceMeshTracker` (video mode, as the real-time path uses it) finds a face.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stablesync.face import FaceMeshTracker, mouth_opening
from stablesync.media import iter_video_frames, read_audio


def speech_envelope(
    samples: NDArray[np.float32], rate_hz: int, fps: float, n_frames: int
) -> NDArray[np.float64]:
    half = int(0.02 * rate_hz)
    x = np.asarray(samples, dtype=np.float64)
    rms = np.zeros(n_frames)
    for t in range(n_frames):
        c = round(t / fps * rate_hz)
        seg = x[max(c - half, 0) : c + half]
        rms[t] = np.sqrt((seg**2).mean()) if len(seg) else 0.0
    kernel = np.array([0.25, 0.5, 0.25])
    return np.convolve(np.pad(rms, 1, mode="edge"), kernel, mode="valid")


def _pearson(a: NDArray[np.float64], b: NDArray[np.float64]) -> float:
    if a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def envelope_correlation(meta_path: Path) -> float:
    meta = json.loads(meta_path.read_text("utf-8"))
    mouth = np.asarray(meta["mouth_open"], dtype=np.float64)
    audio = read_audio(meta_path.with_suffix(".wav"), int(meta["sample_rate_hz"]))
    env = speech_envelope(audio, int(meta["sample_rate_hz"]), float(meta["fps"]), len(mouth))
    return _pearson(mouth, env)


def detection_rate(video: Path, tracker: FaceMeshTracker) -> tuple[int, int, float]:
    """(frames with a face, frames, correlation of the tracked mouth opening with `mouth_open`)."""
    found, total = 0, 0
    openings: list[float] = []
    for frame, _ in iter_video_frames(video):
        faces = tracker.detect(frame)
        total += 1
        found += bool(faces)
        openings.append(mouth_opening(faces[0].points) if faces else np.nan)
    meta = json.loads(video.with_suffix(".json").read_text("utf-8"))
    mouth = np.asarray(meta["mouth_open"], dtype=np.float64)[: len(openings)]
    tracked = np.asarray(openings[: len(mouth)], dtype=np.float64)
    ok = np.isfinite(tracked)
    return found, total, _pearson(mouth[ok], tracked[ok])
