"""Is a take usable for enrolling? One-line reasons before anything is prepared or trained.

A take is refused (a `UserError` naming the file, exit 2) when it is too short, when no face
or two faces show in more than `max_bad_fraction` of the sampled frames, when the face is too
dark, or when its audio is silence. Frames are sampled every `sample_every_s` seconds through
the face mesh in still-image mode with room for two faces. A camera take is checked live with
the same samples (`sample_face`, `TakeTally`), which also say whether the face is frontal and
its mouth in view (guidance shown each second; not reasons to refuse a take).
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    max_turn: float = 0.3  # |nose-to-eye distances differing| / eye distance; ~0.3 is 20 degrees


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


def face_luma(image: NDArray[np.uint8], points: NDArray[np.float32]) -> float:
    """Mean grey level (0-255) of the face's box."""
    h, w = image.shape[:2]
    lo = np.clip(points[:, :2].min(0), 0, [w - 1, h - 1]).astype(int)
    hi = np.clip(points[:, :2].max(0), 0, [w - 1, h - 1]).astype(int)
    box = image[lo[1] : hi[1] + 1, lo[0] : hi[0] + 1].astype(np.float32)
    return float((box @ np.array([0.299, 0.587, 0.114], np.float32)).mean()) if box.size else 0.0


def head_turn(points: NDArray[np.float32]) -> float:
    """How far the head is turned left or right: the nose tip's distances to the two eye centres
    differ by this share of the eye distance (0 frontal, about 0.3 at 20 degrees)."""
    from stablesync.face.landmarks import NOSE_TIP, eye_centres, eye_distance

    right, left = eye_centres(points)
    nose = points[NOSE_TIP, :2]
    gap = float(np.linalg.norm(nose - right) - np.linalg.norm(nose - left))
    return abs(gap) / max(eye_distance(points), 1e-6)


def mouth_in_view(points: NDArray[np.float32], height: int, width: int, margin_px: float = 2.0) -> bool:
    """Whether the lips and the chin lie inside the picture (not cut off by its edge)."""
    from stablesync.face.landmarks import CHIN, MOUTH_OUTER

    xy = points[[*MOUTH_OUTER, CHIN], :2]
    inside = (xy >= margin_px) & (xy <= np.array([width - 1 - margin_px, height - 1 - margin_px]))
    return bool(inside.all())


@dataclass(frozen=True)
class FaceSample:
    """One sampled frame: how many faces, and about the first one: its light, turn, mouth."""

    faces: int
    face_luma: float = 0.0
    turn: float = 0.0
    mouth_in_view: bool = False


def sample_face(faces: list[NDArray[np.float32]], image: NDArray[np.uint8]) -> FaceSample:
    """The sample of a frame from the landmarks (N, 2+) of the faces found in it."""
    if not faces:
        return FaceSample(0)
    h, w = image.shape[:2]
    first = faces[0]
    return FaceSample(len(faces), face_luma(image, first), head_turn(first), mouth_in_view(first, h, w))


@dataclass
class TakeTally:
    """Face samples added up over a take (the file's or, live, the camera's)."""

    sampled: int = 0
    no_face: int = 0
    two_faces: int = 0
    turned: int = 0
    mouth_hidden: int = 0
    lumas: list[float] = field(default_factory=list)

    def add(self, sample: FaceSample, checks: TakeChecks) -> None:
        self.sampled += 1
        self.no_face += sample.faces == 0
        self.two_faces += sample.faces > 1
        if sample.faces:
            self.lumas.append(sample.face_luma)
            self.turned += sample.turn > checks.max_turn
            self.mouth_hidden += not sample.mouth_in_view

    def summary(self, duration_s: float, frames: int, audio: NDArray[np.float32]) -> TakeSummary:
        loud, voiced = speech_levels(audio)
        return TakeSummary(
            duration_s=duration_s,
            frames=frames,
            sampled=self.sampled,
            no_face=self.no_face,
            two_faces=self.two_faces,
            face_luma=float(np.median(self.lumas)) if self.lumas else 0.0,
            speech_dbfs=loud,
            voiced_fraction=voiced,
        )


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

    tally = TakeTally()
    frames = 0
    next_s, last_s = 0.0, 0.0
    with FaceMeshTracker(max_faces=2, video=False) as tracker:
        for image, t_s in iter_video_frames(video):
            frames += 1
            last_s = t_s
            if t_s + 1e-6 < next_s:
                continue
            next_s = t_s + checks.sample_every_s
            faces = tracker.detect(image)
            tally.add(sample_face([f.points for f in faces], image), checks)
    rate = frames / max(last_s, 1e-6) if frames > 1 else 25.0
    duration_s = last_s + 1.0 / rate if frames else 0.0
    return tally.summary(duration_s, frames, audio)


def reasons(s: TakeSummary, checks: TakeChecks) -> list[str]:
    """Why the take cannot be used; empty when it can."""
    out: list[str] = []
    if s.duration_s < checks.min_duration_s:
        out.append(f"too short ({s.duration_s:.1f} s; at least {checks.min_duration_s:g} s, 60-90 s is best)")
    bad = checks.max_bad_fraction * max(s.sampled, 1)
    if s.sampled == 0:
        out.append("no face (no frame could be looked at)")
    elif s.no_face > bad:
        out.append(
            f"no face in {s.no_face} of {s.sampled} sampled frames (face the camera, whole face in view)"
        )
    if s.two_faces > bad:
        out.append(f"two faces in {s.two_faces} of {s.sampled} sampled frames (only you in view)")
    if s.sampled and s.no_face <= bad and s.face_luma < checks.min_face_luma:
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
