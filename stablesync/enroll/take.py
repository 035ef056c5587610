"""The take as a prepared dataset: `data prepare`'s clip, split into training and held-aside parts.

The whole take goes through `stablesync.data.prepare.prepare_clip` (25 fps, face mesh, aligned
crops, 16 kHz audio, mel), then its frames are cut at `split_frame`: the first part becomes the
`train` clip, the rest (the last `holdout_fraction`, at least `min_holdout_frames`) the `holdout`
clip, listed as both `val` and `test`. Each part's mel is computed from its own audio, so the
pairing of frames and mel windows is the one of any prepared clip.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.data.prepare import FPS, LAYOUT_VERSION, SAMPLE_RATE_HZ, PrepareConfig, prepare_clip
from stablesync.data.sources import SourceItem
from stablesync.errors import UserError
from stablesync.media import read_audio, write_wav
from stablesync.typed_config import to_dict

TRAIN, HOLDOUT = "train", "holdout"


@dataclass(frozen=True)
class TakeSplit:
    prepared: Path  # the prepared dataset folder (train.txt, val.txt, clips/...)
    n_frames: int  # frames of the whole take at 25 fps
    split_frame: int  # first held-aside frame

    @property
    def split_s(self) -> float:
        return self.split_frame / FPS

    @property
    def footage_s(self) -> float:
        return self.n_frames / FPS


def holdout_start(n_frames: int, fraction: float, min_frames: int) -> int:
    held = max(round(fraction * n_frames), min_frames)
    if n_frames - held < min_frames:
        raise UserError(
            f"take of {n_frames} frames: too short to keep {held} frames aside and train on the rest"
        )
    return n_frames - held


def _write_part(
    root: Path, clip_id: str, arrays: dict[str, Any], audio: NDArray[np.float32], meta: dict[str, Any]
) -> None:
    from stablesync.audio import log_mel

    d = root / "clips" / clip_id
    d.mkdir(parents=True, exist_ok=True)
    for name, value in arrays.items():
        np.save(d / f"{name}.npy", value)
    np.save(d / "mel.npy", log_mel(audio).astype(np.float32))
    write_wav(d / "audio.wav", audio, SAMPLE_RATE_HZ)
    (d / "meta.json").write_text(json.dumps(meta))


def prepare_take(
    video: Path, audio: NDArray[np.float32], work: Path, holdout_fraction: float, min_holdout_frames: int = 10
) -> TakeSplit:
    """Prepares the take into `work/prepared` (kept: a resumed enroll reuses it)."""
    from stablesync.audio import MelConfig

    prepared = work / "prepared"
    info = prepared / "take.json"
    if info.is_file():
        done = json.loads(info.read_text())
        return TakeSplit(prepared, int(done["n_frames"]), int(done["split_frame"]))
    src, whole = work / "take", work / "whole"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(whole, ignore_errors=True)
    shutil.rmtree(prepared, ignore_errors=True)
    src.mkdir(parents=True)
    (src / f"take{video.suffix}").symlink_to(video.resolve())
    write_wav(src / "take.wav", audio, SAMPLE_RATE_HZ)  # beside the video: prepare reads it
    item = SourceItem("take", src / f"take{video.suffix}", "train")
    _, reason = prepare_clip(item, PrepareConfig(src=src, dst=whole, size=96, progress=False))
    if reason is not None:
        raise UserError(f"{video}: unusable take: {reason}")
    clip = whole / "clips" / "take"
    frames, marks = np.load(clip / "frames.npy"), np.load(clip / "landmarks.npy")
    pcm = read_audio(clip / "audio.wav", SAMPLE_RATE_HZ)
    n = len(frames)
    split = holdout_start(n, holdout_fraction, min_holdout_frames)
    cut = round(split / FPS * SAMPLE_RATE_HZ)
    base = json.loads((clip / "meta.json").read_text())
    for clip_id, sl, sound in ((TRAIN, slice(0, split), pcm[:cut]), (HOLDOUT, slice(split, n), pcm[cut:])):
        part = {"frames": frames[sl], "landmarks": marks[sl]}
        count = len(part["frames"])
        meta = {**base, "id": clip_id, "n_frames": count, "n_samples": len(sound), "split": clip_id}
        _write_part(prepared, clip_id, part, sound, meta)
    lists = {"train.txt": TRAIN, "val.txt": HOLDOUT, "test.txt": HOLDOUT}
    for name, clip_id in lists.items():
        (prepared / name).write_text(clip_id + "\n")
    dataset = {
        "layout_version": LAYOUT_VERSION,
        "size": 96,
        "fps": FPS,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "mel": to_dict(MelConfig()),
        "clips": 2,
    }
    (prepared / "dataset.json").write_text(json.dumps(dataset, indent=1))
    info.write_text(json.dumps({"n_frames": n, "split_frame": split, "source": str(video)}))  # last: done
    shutil.rmtree(whole, ignore_errors=True)
    shutil.rmtree(src, ignore_errors=True)
    return TakeSplit(prepared, n, split)
