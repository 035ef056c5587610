"""Is a take usable for enrolling? One-line reasons before anything is prepared or trained.

A take is refused (a `UserError` naming the file, exit 2) when it is too short, when no face
or two faces show in more than `max_bad_fraction` of the sampled frames, when the face is too
dark, or when its audio is silence. Frames are sampled every `sample_every_s` seconds through
the face mesh in still-image mode with room for two faces.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stablesync.errors import UserError

RATE_HZ = 16_000


@dataclass(frozen=True)
class TakeChecks:
    min_duration_s: float = 1.5
    sample_every_s: float = 0.5
    max_bad_fraction: float = 0.2  # sampled frames with no face (or with two) tolerated
    min_face_luma: float = 40.0  # mean grey level (0-255) of the face's box
    min_speech_dbfs: float = -45.0  # loudest 10% of 100 ms windows must reach this
    min_voiced_fraction: float = 0.1  # share of 100 ms windows within 30 dB of the loudest


@dataclass(frozen=True)
class TakeSummary:
    duration_s: float
    frames: int
    sampled: int
    no_face: int
    two_faces: int
    face_luma: float
    speech_dbfs: float
    voiced_fraction: float


def _face_luma(image: NDArray[np.uint8], points: NDArray[np.float32]) -> float:
    h, w = image.shape[:2]
    lo = np.clip(points[:, :2].min(0), 0, [w - 1, h - 1]).astype(int)
    hi = np.clip(points[:, :2].max(0), 0, [w - 1, h - 1]).astype(int)
    box = image[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1].astype(np.float32)
    return float((box @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) if box.size else 0.0


def speech_levels(audio: NDArray[np.float32], rate_hz: int = RATE_HZ) -> tuple[float, float]:
    """(dBFS of the loudest 10% of 100 ms windows, share of windows within 30 dB of that)."""
    n = rate_hz // 10
    if len(audio) < n:
        return -120.0, 0.0
    windows = audio[: len(audio) // n * n].astype(np.float64).reshape(-1, n)
    db = 20 * np.log10(np.sqrt((windows**2).mean(1)) + 1e-9)
    loud = float(np.percentile(db, 90))
    return loud, float(np.mean(db > loud - 30.0))


def summarise_take(video: Path, audio: NDArray[np.float32], checks: TakeChecks) -> TakeSummary:
    from stablesync.face import FaceMeshTracker
    from stablesync.media import iter_video_frames

    sampled = no_face = two = frames = 0
    lumas: list[float] = []
    next_s, last_s = 0.0, 0.0
    with FaceMeshTracker(max_faces=2, video=False) as tracker:
        for image, t_s in iter_video_frames(video):
            frames += 1
            last_s = t_s
            if t_s + 1e-6 < next_s:
                continue
            next_s = t_s + checks.sample_every_s
            sampled += 1
            faces = tracker.detect(image)
            no_face += not faces
            two += len(faces) > 1
            if faces:
                lumas.append(_face_luma(image, faces[0].points))
    rate = frames / max(last_s, 1e-6) if frames > 1 else 25.0
    duration_s = last_s + 1.0 / rate if frames else 0.0
    loud, voiced = speech_levels(audio)
    return TakeSummary(
        duration_s=duration_s,
        frames=frames,
        sampled=sampled,
        no_face=no_face,
        two_faces=two,
        face_luma=float(np.median(lumas)) if lumas else 0.0,
        speech_dbfs=loud,
        voiced_fraction=voiced,
    )


def reasons(s: TakeSummary, checks: TakeChecks) -> list[str]:
    """Why the take cannot be used; empty when it can."""
    out: list[str] = []
    if s.duration_s < checks.min_duration_s:
        out.append(f"too short ({s.duration_s:.1f} s; at least {checks.min_duration_s:g} s, 60-90 s is best)")
    bad = checks.max_bad_fraction * max(s.sampled, 1)
    if s.no_face > bad:
        out.append(
            f"no face in {s.no_face} of {s.sampled} sampled frames (face the camera, whole face in view)"
        )
    if s.two_faces > bad:
        out.append(f"two faces in {s.two_faces} of {s.sampled} sampled frames (only you in view)")
    if s.no_face <= bad and s.face_luma < checks.min_face_luma:
        out.append(f"too dark (face brightness {s.face_luma:.0f} of 255; at least {checks.min_face_luma:g})")
    if s.speech_dbfs < checks.min_speech_dbfs or s.voiced_fraction < checks.min_voiced_fraction:
        out.append(
            f"silence (loudest speech {s.speech_dbfs:.0f} dBFS, {100 * s.voiced_fraction:.0f}% of the take"
            " voiced; speak throughout, microphone on)"
        )
    return out


def check_take(video: Path, audio: NDArray[np.float32], checks: TakeChecks = TakeChecks()) -> TakeSummary:
    """The take's summary, or a UserError listing every reason it cannot be used."""
    summary = summarise_take(video, audio, checks)
    problems = reasons(summary, checks)
    if problems:
        raise UserError(f"{video}: unusable take: {'; '.join(problems)}")
    return summary
