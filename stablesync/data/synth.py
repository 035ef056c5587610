"""`stablesync data synth`: a synthetic talking-face corpus, in parallel, resumable, deterministic.

Clip i of a corpus with seed K is planned from (K, i) alone: its split (i % 10 == 1 -> val,
i % 10 == 2 -> test, otherwise train), a voice of that split, a face identity of that split.
Voices and faces belong to exactly one split (see `text.VOICES`, `faces.face_split`), so
train, val and test are disjoint by voice and by face. A clip is done when its json exists
(written last, atomically): an interrupted run started again skips the finished clips.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from stablesync.data.clip import ClipPlan, RenderConfig, render_clip
from stablesync.data.faces import pick_face
from stablesync.data.text import Split, voices_for
from stablesync.errors import UserError
from stablesync.face import FaceMeshTracker

CORPUS_VERSION = 1


@dataclass(frozen=True)
class SynthConfig:
    out_dir: Path
    clips: int
    seconds: float = 4.0
    seed: int = 0
    workers: int = 1
    render: RenderConfig = field(default_factory=RenderConfig)
    progress: bool = True


def clip_split(index: int) -> Split:
    return "val" if index % 10 == 1 else "test" if index % 10 == 2 else "train"


def plan_clip(seed: int, index: int, seconds: float) -> ClipPlan:
    rng = np.random.default_rng(np.random.SeedSequence([seed, index, 7]))
    split = clip_split(index)
    voices = voices_for(split)
    voice = voices[int(rng.integers(len(voices)))]
    face = pick_face(rng, split)
    return ClipPlan(f"clip{index:05d}", index, split, voice, face, seconds, seed)


@cache
def _still_tracker() -> FaceMeshTracker:
    """One static-image tracker per worker process (landmarks of the face stills)."""
    return FaceMeshTracker(video=False)


def _work(job: tuple[ClipPlan, RenderConfig, str]) -> str:
    plan, render, out_dir = job
    return render_clip(plan, render, Path(out_dir), _still_tracker()).name


def _check_settings(cfg: SynthConfig) -> None:
    """A corpus directory keeps one seed, clip length and frame size: resuming must not mix them."""
    settings = {
        "version": CORPUS_VERSION,
        "seed": cfg.seed,
        "seconds": cfg.seconds,
        "size": cfg.render.size,
        "fps": cfg.render.fps,
        "sample_rate_hz": cfg.render.sample_rate_hz,
    }
    path = cfg.out_dir / "synth.json"
    if path.exists():
        old = json.loads(path.read_text())
        if old != settings:
            diff = ", ".join(f"{k}={old.get(k)!r}" for k in settings if old.get(k) != settings[k])
            raise UserError(
                f"{cfg.out_dir}: holds a corpus made with {diff}; use a new --out or the same settings"
            )
        return
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(settings, indent=2))
    tmp.replace(path)


def write_manifest(cfg: SynthConfig, plans: list[ClipPlan]) -> Path:
    clips: list[dict[str, Any]] = []
    for plan in plans:
        if (cfg.out_dir / f"{plan.name}.json").exists():
            clips.append(
                {
                    "name": plan.name,
                    "split": plan.split,
                    "voice": plan.voice.name,
                    "language": plan.voice.language,
                    "face": plan.face,
                    "seconds": plan.seconds,
                    "video": f"{plan.name}.mp4",
                    "audio": f"{plan.name}.wav",
                    "meta": f"{plan.name}.json",
                    "landmarks": f"{plan.name}.npz",
                }
            )
    manifest = {
        "version": CORPUS_VERSION,
        "seed": cfg.seed,
        "fps": cfg.render.fps,
        "sample_rate_hz": cfg.render.sample_rate_hz,
        "size": cfg.render.size,
        "clips": clips,
    }
    path = cfg.out_dir / "manifest.json"
    tmp = path.with_suffix(".json.partial")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    tmp.replace(path)
    return path


def synthesise_corpus(cfg: SynthConfig) -> Path:
    """Generates the missing clips of the corpus and (re)writes DIR/manifest.json; returns its path."""
    if cfg.clips < 1:
        raise UserError(f"--clips {cfg.clips}: expected at least 1")
    if not 0.5 <= cfg.seconds <= 600:
        raise UserError(f"--seconds {cfg.seconds}: expected a clip length between 0.5 and 600")
    if cfg.workers < 1:
        raise UserError(f"--workers {cfg.workers}: expected at least 1")
    if cfg.out_dir.exists() and not cfg.out_dir.is_dir():
        raise UserError(f"--out {cfg.out_dir}: exists and is not a directory")
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(cfg)
    plans = [plan_clip(cfg.seed, i, cfg.seconds) for i in range(cfg.clips)]
    todo = [p for p in plans if not (cfg.out_dir / f"{p.name}.json").exists()]
    jobs = [(p, cfg.render, str(cfg.out_dir)) for p in todo]
    bar = tqdm(
        total=len(plans), initial=len(plans) - len(todo), unit="clip", disable=not cfg.progress, desc="synth"
    )
    try:
        if cfg.workers == 1 or len(jobs) <= 1:
            for job in jobs:
                _work(job)
                bar.update(1)
        else:
            ctx = multiprocessing.get_context("spawn")  # mediapipe and espeak are not fork-safe
            with ctx.Pool(min(cfg.workers, len(jobs))) as pool:
                for _ in pool.imap_unordered(_work, jobs):
                    bar.update(1)
                pool.close()
                pool.join()  # workers exit on their own (an error or Ctrl-C terminates them)
    finally:
        bar.close()
        write_manifest(cfg, plans)
    return cfg.out_dir / "manifest.json"
