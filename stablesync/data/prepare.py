"""`stablesync data prepare SRC DST`: talking videos -> the prepared layout the trainer reads.

Per clip: video resampled to 25 fps (nearest earlier-or-equal source frame), mediapipe
landmarks (video mode), aligned face crops at `size`, audio as 16 kHz mono (the `.wav` beside
the video when there is one, e.g. in a synthetic corpus, else the video's own audio track), the
cached log-mel, and meta.json. Each clip is written into a hidden temporary folder and renamed
when complete, so an interrupted run leaves no half-written clip and a second run skips the
clips already done. Unreadable, truncated, silent-less or faceless inputs are skipped and
listed with the reason in DST/report.json.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from stablesync.audio import MelConfig
from stablesync.data.sources import SourceItem, discover
from stablesync.data.track import CropTrack, track_video
from stablesync.errors import UserError
from stablesync.face import FaceMeshTracker
from stablesync.media import read_audio, to_pcm16, write_wav
from stablesync.typed_config import to_dict

LAYOUT_VERSION = 1
FPS = 25.0
SAMPLE_RATE_HZ = 16_000
SYNTH_KEYS = ("mouth_open", "visemes", "voice", "face", "language", "lip_width", "lip_rounding", "phonemes")


@dataclass(frozen=True)
class PrepareConfig:
    src: Path
    dst: Path
    layout: Literal["folder", "lrs2"] = "folder"
    size: int = 96
    workers: int = 1
    progress: bool = True
    max_missing_fraction: float = 0.2  # more frames than this without a face: the clip is skipped


@dataclass
class PrepareReport:
    prepared: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


@cache
def _tracker() -> FaceMeshTracker:
    """One video-mode tracker per worker process (reset between clips by `track_video`)."""
    return FaceMeshTracker(video=True)


def _synthetic_meta(item: SourceItem, n_frames: int) -> dict[str, Any]:
    side = item.path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        meta = json.loads(side.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict) or "mouth_open" not in meta:
        return {}
    out: dict[str, Any] = {}
    for key in SYNTH_KEYS:
        if key in meta:
            value = meta[key]
            if key in ("mouth_open", "visemes", "lip_width", "lip_rounding") and isinstance(value, list):
                value = (value + value[-1:] * n_frames)[:n_frames] if value else value
            out[key] = value
    return out


def prepare_clip(item: SourceItem, cfg: PrepareConfig) -> tuple[str, str | None]:
    """(clip id, None) when prepared, (clip id, reason) when skipped."""
    final = cfg.dst / "clips" / item.clip_id
    if (final / "meta.json").is_file():
        return item.clip_id, None
    try:
        wav_beside = item.path.with_suffix(".wav")
        audio = read_audio(wav_beside if wav_beside.is_file() else item.path, SAMPLE_RATE_HZ)
        crops: CropTrack = track_video(item.path, cfg.size, FPS, _tracker(), cfg.max_missing_fraction)
    except UserError as exc:
        return item.clip_id, str(exc)
    from stablesync.audio import log_mel

    audio = to_pcm16(audio).astype(np.float32) / 32767.0  # the mel of exactly what audio.wav holds
    mel = log_mel(audio)
    tmp = cfg.dst / "clips" / f".{item.clip_id}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "frames.npy", crops.frames)
    np.save(tmp / "landmarks.npy", crops.landmarks)
    np.save(tmp / "mel.npy", mel.astype(np.float32))
    write_wav(tmp / "audio.wav", audio, SAMPLE_RATE_HZ)
    n = len(crops.frames)
    meta: dict[str, Any] = {
        "id": item.clip_id,
        "fps": FPS,
        "n_frames": n,
        "sample_rate_hz": SAMPLE_RATE_HZ,
        "n_samples": len(audio),
        "size": cfg.size,
        "source": str(item.path),
        "source_fps": crops.source_fps,
        "split": item.split,
        "missing_face_frames": crops.missing,
        **_synthetic_meta(item, n),
    }
    (tmp / "meta.json").write_text(json.dumps(meta, ensure_ascii=False))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return item.clip_id, None


def _work(job: tuple[SourceItem, PrepareConfig]) -> tuple[str, str, str | None]:
    item, cfg = job
    clip_id, reason = prepare_clip(item, cfg)
    return clip_id, str(item.path), reason


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False))
    tmp.replace(path)


def _write_lists(cfg: PrepareConfig, prepared: list[str]) -> None:
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for clip_id in sorted(prepared):
        meta = json.loads((cfg.dst / "clips" / clip_id / "meta.json").read_text("utf-8"))
        splits.setdefault(meta["split"], []).append(clip_id)
    for name, ids in splits.items():
        tmp = cfg.dst / f"{name}.txt.partial"
        tmp.write_text("".join(f"{i}\n" for i in ids))
        tmp.replace(cfg.dst / f"{name}.txt")
    _write_json(
        cfg.dst / "dataset.json",
        {
            "layout_version": LAYOUT_VERSION,
            "size": cfg.size,
            "fps": FPS,
            "sample_rate_hz": SAMPLE_RATE_HZ,
            "mel": to_dict(MelConfig()),
            "clips": len(prepared),
        },
    )


def _check_dst(cfg: PrepareConfig) -> None:
    info = cfg.dst / "dataset.json"
    if info.is_file():
        old = json.loads(info.read_text("utf-8"))
        if old.get("size") != cfg.size:
            raise UserError(f"{cfg.dst}: was prepared with --size {old.get('size')}; use it or a new DST")


def prepare_dataset(cfg: PrepareConfig) -> PrepareReport:
    if not cfg.src.is_dir():
        raise UserError(f"{cfg.src}: not a directory; expected a folder of talking videos")
    if not 32 <= cfg.size <= 1024:
        raise UserError(f"--size {cfg.size}: expected a crop size between 32 and 1024 pixels")
    if cfg.workers < 1:
        raise UserError(f"--workers {cfg.workers}: expected at least 1")
    items = discover(cfg.src, cfg.layout)
    if not items:
        raise UserError(f"{cfg.src}: no video files found for --layout {cfg.layout}")
    (cfg.dst / "clips").mkdir(parents=True, exist_ok=True)
    _check_dst(cfg)
    report = PrepareReport()
    jobs = [(item, cfg) for item in items]
    bar = tqdm(total=len(jobs), unit="clip", disable=not cfg.progress, desc="prepare")
    try:
        if cfg.workers == 1 or len(jobs) <= 1:
            results = (_work(job) for job in jobs)
            for clip_id, path, reason in results:
                _record(report, clip_id, path, reason)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")  # mediapipe is not fork-safe
            with ctx.Pool(min(cfg.workers, len(jobs))) as pool:
                for clip_id, path, reason in pool.imap_unordered(_work, jobs):
                    _record(report, clip_id, path, reason)
                    bar.update(1)
                pool.close()
                pool.join()  # workers exit on their own (an error or Ctrl-C terminates them)
    finally:
        bar.close()
        report.prepared.sort()
        report.skipped.sort(key=lambda s: s["path"])
        _write_lists(cfg, report.prepared)
        _write_json(cfg.dst / "report.json", {"prepared": report.prepared, "skipped": report.skipped})
    return report


def _record(report: PrepareReport, clip_id: str, path: str, reason: str | None) -> None:
    if reason is None:
        report.prepared.append(clip_id)
    else:
        report.skipped.append({"path": path, "reason": reason})
