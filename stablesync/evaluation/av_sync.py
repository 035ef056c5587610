"""Does the mouth in a rendered video follow the speech in its own audio track?

Measured on the whole output frame, as a viewer would see it, with nothing from the model:

- the mouth opening of every frame (mediapipe face mesh in video mode, inner-lip gap divided
  by the eye distance; NaN where no face is found);
- the speech envelope at each frame's time (RMS over 40 ms, `stablesync.data.quality`);
- their Pearson correlation with the mouth shifted by -max_lag..+max_lag frames (+: the mouth
  moves after the sound); the best shift is searched within +-best_within frames (120 ms),
  since speech is roughly periodic and a far shift can correlate by chance. A still face gives
  NaN (no movement at all).

Used on the demo's mp4 (`python -m stablesync.benchmarks.demo_sync`) and by the outside latency probe.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stablesync.data.quality import speech_envelope
from stablesync.evaluation.mouth import correlation

RATE_HZ = 16_000


def mouth_series(video: Path) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(pts_s, mouth opening) of every frame of a video file (NaN where no face)."""
    from stablesync.face import FaceMeshTracker, mouth_opening
    from stablesync.media import iter_video_frames

    pts, opening = [], []
    with FaceMeshTracker(video=True) as tracker:
        for rgb, t_s in iter_video_frames(video):
            faces = tracker.detect(rgb)
            pts.append(t_s)
            opening.append(mouth_opening(faces[0].points) if faces else np.nan)
    return np.asarray(pts), np.asarray(opening)


@dataclass(frozen=True)
class MouthAudioSync:
    frames: int
    tracked_fraction: float  # frames with a face found
    corr_at_zero: float  # mouth opening vs speech envelope, no shift
    best_lag_frames: int  # the shift within +-3 frames with the highest correlation (+: mouth after)
    corr_at_best: float
    mouth_std: float  # how much the mouth moves at all (opening units)
    corr_by_lag: dict[int, float]


def lagged_correlation(mouth: NDArray[np.float64], envelope: NDArray[np.float64], lag: int) -> float:
    """corr(mouth[t + lag], envelope[t]) over the frames both cover."""
    if lag > 0:
        return correlation(mouth[lag:], envelope[:-lag])
    if lag < 0:
        return correlation(mouth[:lag], envelope[-lag:])
    return correlation(mouth, envelope)


def series_sync(
    pts_s: NDArray[np.float64],
    opening: NDArray[np.float64],
    audio: NDArray[np.float32],
    max_lag_frames: int = 8,
    best_within_frames: int = 3,
) -> MouthAudioSync:
    """The measure on a mouth series and the video's audio track (RATE_HZ, starting at pts 0)."""
    if pts_s.size < 2 * max_lag_frames + 3:
        raise ValueError(f"{pts_s.size} frames: too short to correlate")
    fps = 1.0 / float(np.median(np.diff(pts_s)))
    audio = audio[max(round(float(pts_s[0]) * RATE_HZ), 0) :]
    env = speech_envelope(audio, RATE_HZ, fps, pts_s.size)
    corrs = {k: lagged_correlation(opening, env, k) for k in range(-max_lag_frames, max_lag_frames + 1)}
    finite = {k: c for k, c in corrs.items() if np.isfinite(c) and abs(k) <= best_within_frames}
    best = max(finite, key=lambda k: finite[k]) if finite else 0
    return MouthAudioSync(
        frames=int(pts_s.size),
        tracked_fraction=float(np.mean(~np.isnan(opening))),
        corr_at_zero=corrs[0],
        best_lag_frames=best,
        corr_at_best=corrs[best],
        mouth_std=float(np.nanstd(opening)) if np.isfinite(opening).any() else float("nan"),
        corr_by_lag=corrs,
    )


def mouth_follows_audio(video: Path, max_lag_frames: int = 8) -> MouthAudioSync:
    from stablesync.media import read_audio

    pts, opening = mouth_series(video)
    return series_sync(pts, opening, read_audio(video, RATE_HZ), max_lag_frames)
