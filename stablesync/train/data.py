"""Reading the prepared-dataset layout (`stablesync data prepare`) and drawing training batches.

numpy only. Frames are memory-mapped, so a corpus larger than memory trains fine. Batches
come from a `numpy.random.Generator`, whose state the trainer saves for exact resume.

Pairing rules (`stablesync.audio`): the generator pairs frame t with the 16-frame mel window
ending `lookahead_ms` after t; AVSyncNet pairs the 5 frames starting at i with the window
starting at i's instant (`mel_window_start(i, fps, 200.0, 16)`). A syncnet negative pairs the
frames with the window of another, non-overlapping 5-frame window of the same clip.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.audio import MelConfig, mel_window, mel_window_start
from stablesync.errors import UserError
from stablesync.typed_config import from_dict

SYNC_LOOKAHEAD_MS = 200.0
WINDOW_FRAMES = 16
F32 = NDArray[np.float32]


@dataclass(frozen=True)
class Clip:
    clip_id: str
    frames: NDArray[np.uint8]  # (T, S, S, 3), memory-mapped
    mel: F32  # (n_mels, M)
    fps: float
    meta: dict[str, Any]

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])


class PreparedData:
    """One split (`train`, `val` or `test`) of a prepared dataset folder."""

    def __init__(self, root: str | Path, split: str, min_frames: int = 10) -> None:
        self.root = Path(root)
        info_path = self.root / "dataset.json"
        if not info_path.is_file():
            raise UserError(
                f"{self.root}: not a prepared dataset (no dataset.json; run `stablesync data prepare`)"
            )
        try:
            info = json.loads(info_path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{info_path}: not valid JSON ({exc.msg})") from None
        if info.get("layout_version") != 1:
            raise UserError(f"{info_path}: layout_version {info.get('layout_version')!r}, expected 1")
        self.size = int(info["size"])
        self.fps = float(info["fps"])
        self.mel_cfg = from_dict(MelConfig, info.get("mel", {}), f"{info_path}: mel")
        list_path = self.root / f"{split}.txt"
        if not list_path.is_file():
            raise UserError(f"{list_path}: split list not found")
        ids = [line.strip() for line in list_path.read_text().splitlines() if line.strip()]
        self.clips: list[Clip] = []
        for clip_id in ids:
            clip = self._load_clip(clip_id)
            if clip.n_frames >= min_frames:
                self.clips.append(clip)
        if not self.clips:
            raise UserError(f"{list_path}: no clip with at least {min_frames} frames")

    def _load_clip(self, clip_id: str) -> Clip:
        d = self.root / "clips" / clip_id
        try:
            frames = np.load(d / "frames.npy", mmap_mode="r")
            mel = np.load(d / "mel.npy").astype(np.float32, copy=False)
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{d}: unreadable clip ({exc})") from None
        if frames.ndim != 4 or frames.shape[1:] != (self.size, self.size, 3) or frames.dtype != np.uint8:
            raise UserError(
                f"{d}/frames.npy: expected uint8 (T, {self.size}, {self.size}, 3), got {frames.shape}"
            )
        if mel.ndim != 2 or mel.shape[0] != self.mel_cfg.n_mels:
            raise UserError(f"{d}/mel.npy: expected ({self.mel_cfg.n_mels}, M), got {mel.shape}")
        return Clip(clip_id, frames, mel, float(meta.get("fps", self.fps)), meta)

    def landmarks(self, clip: Clip) -> F32 | None:
        path = self.root / "clips" / clip.clip_id / "landmarks.npy"
        return np.load(path).astype(np.float32) if path.is_file() else None


def to_chw(frames: NDArray[np.uint8]) -> F32:
    """(..., S, S, 3) uint8 -> (..., 3, S, S) float32 in [0, 1]."""
    x = np.asarray(frames, dtype=np.float32) / 255.0
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def sync_mel(clip: Clip, start_frame: int, cfg: MelConfig) -> F32:
    """(1, n_mels, 16): AVSyncNet's window for the 5 frames starting at `start_frame`."""
    start = mel_window_start(start_frame, clip.fps, SYNC_LOOKAHEAD_MS, WINDOW_FRAMES, cfg)
    return mel_window(clip.mel, start, WINDOW_FRAMES, cfg)[None]


def generator_mel(clip: Clip, frame: int, lookahead_ms: float, cfg: MelConfig) -> F32:
    """(1, n_mels, 16): the generator's window for video frame `frame`."""
    start = mel_window_start(frame, clip.fps, lookahead_ms, WINDOW_FRAMES, cfg)
    return mel_window(clip.mel, start, WINDOW_FRAMES, cfg)[None]


@dataclass(frozen=True)
class SyncBatch:
    frames: F32  # (B, n, 3, S, S)
    mels: F32  # (B, 1, n_mels, 16)
    labels: F32  # (B,) 1 = in sync


def sample_sync_batch(
    data: PreparedData,
    rng: np.random.Generator,
    batch: int,
    n_frames: int = 5,
    negative_fraction: float = 0.5,
) -> SyncBatch:
    frames, mels, labels = [], [], []
    for _ in range(batch):
        clip = data.clips[int(rng.integers(len(data.clips)))]
        last = clip.n_frames - n_frames
        i = int(rng.integers(last + 1))
        negative = bool(rng.random() < negative_fraction)
        j = i
        if negative:
            # another window of the same clip that does not overlap [i, i + n)
            choices = [k for k in range(last + 1) if abs(k - i) >= n_frames]
            j = choices[int(rng.integers(len(choices)))]
        frames.append(to_chw(clip.frames[i : i + n_frames]))
        mels.append(sync_mel(clip, j, data.mel_cfg))
        labels.append(0.0 if negative else 1.0)
    return SyncBatch(np.stack(frames), np.stack(mels), np.asarray(labels, dtype=np.float32))


@dataclass(frozen=True)
class GeneratorBatch:
    targets: F32  # (B, n, 3, S, S): n consecutive ground-truth frames (also the pose input)
    mels: F32  # (B, n, 1, n_mels, 16): the generator's window per frame
    sync_mels: F32  # (B, 1, n_mels, 16): AVSyncNet's window for the n frames
    references: F32  # (B, 3, S, S): a random frame of the same clip (identity)


def silent_window_starts(clip: Clip, n_frames: int, lookahead_ms: float, cfg: MelConfig) -> NDArray[np.int64]:
    """Starts t0 whose `n_frames` generator windows are all digital silence (the mel floor)."""
    silent = np.asarray(
        [generator_mel(clip, t, lookahead_ms, cfg).max() <= cfg.silence_value for t in range(clip.n_frames)]
    )
    runs = np.lib.stride_tricks.sliding_window_view(silent, n_frames).all(axis=1)
    return np.flatnonzero(runs).astype(np.int64)


@dataclass(frozen=True)
class SilenceDraw:
    """Draw `fraction` of the windows among silent ones; `starts[i]` are clip i's silent starts."""

    fraction: float
    starts: list[NDArray[np.int64]]

    @classmethod
    def of(cls, data: PreparedData, fraction: float, n_frames: int, lookahead_ms: float) -> SilenceDraw:
        starts = [silent_window_starts(c, n_frames, lookahead_ms, data.mel_cfg) for c in data.clips]
        return cls(fraction if any(len(s) for s in starts) else 0.0, starts)


def sample_generator_batch(
    data: PreparedData,
    rng: np.random.Generator,
    batch: int,
    n_frames: int,
    lookahead_ms: float,
    silence: SilenceDraw | None = None,
) -> GeneratorBatch:
    """`batch` windows of `n_frames` from random clips; with `silence`, that fraction of them
    (on average) drawn among the windows whose audio is silent (no draw when it is None or 0,
    so runs without it keep their random stream)."""
    targets, mels, sync_mels, refs = [], [], [], []
    with_silence = [i for i, s in enumerate(silence.starts) if len(s)] if silence else []
    for _ in range(batch):
        if silence and silence.fraction > 0 and rng.random() < silence.fraction:
            ci = with_silence[int(rng.integers(len(with_silence)))]
            clip = data.clips[ci]
            t0 = int(silence.starts[ci][int(rng.integers(len(silence.starts[ci])))])
        else:
            clip = data.clips[int(rng.integers(len(data.clips)))]
            t0 = int(rng.integers(clip.n_frames - n_frames + 1))
        far = [k for k in range(clip.n_frames) if k < t0 - n_frames or k >= t0 + 2 * n_frames]
        r = far[int(rng.integers(len(far)))] if far else int(rng.integers(clip.n_frames))
        targets.append(to_chw(clip.frames[t0 : t0 + n_frames]))
        mels.append(
            np.stack([generator_mel(clip, t, lookahead_ms, data.mel_cfg) for t in range(t0, t0 + n_frames)])
        )
        sync_mels.append(sync_mel(clip, t0, data.mel_cfg))
        refs.append(to_chw(clip.frames[r]))
    return GeneratorBatch(np.stack(targets), np.stack(mels), np.stack(sync_mels), np.stack(refs))


def fixed_batches(n: int, seed: int, draw: Any) -> list[Any]:
    """`n` batches drawn once with their own seed: the same validation set at every evaluation."""
    rng = np.random.default_rng(seed)
    return [draw(rng) for _ in range(n)]
