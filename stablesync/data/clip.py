"""One synthetic clip: speech from espeak-ng, mouth parameters from its phonemes, a face animated to them.

Everything random comes from the clip's own numpy Generator, so a (seed, index) pair always
gives the same clip.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal  # noqa: F401  imported once per worker: the forked speech children inherit it
from numpy.typing import NDArray

from stablesync.audio import resample
from stablesync.data.espeak import EspeakSynth, Phoneme, run_isolated
from stablesync.data.faces import make_still
from stablesync.data.text import Split, Voice, sentences
from stablesync.data.visemes import STEP_S, mouth_track, pause_mask
from stablesync.data.warp import FaceAnimator, Pose
from stablesync.face import FaceMeshTracker
from stablesync.face.landmarks import MOUTH_INNER, MOUTH_OUTER
from stablesync.media import Mp4Writer, write_wav


@dataclass(frozen=True)
class ClipPlan:
    name: str
    index: int
    split: Split
    voice: Voice
    face: str
    seconds: float
    seed: int  # the corpus seed


@dataclass(frozen=True)
class RenderConfig:
    size: int = 256
    fps: float = 25.0
    sample_rate_hz: int = 16_000


def _speech(
    plan: ClipPlan, rng: np.random.Generator, synth: EspeakSynth, rate_hz: int
) -> tuple[NDArray[np.float32], list[Phoneme], dict[str, Any]]:
    """Sentences with pauses, exactly plan.seconds long at rate_hz, and their timed phonemes."""
    total = round(plan.seconds * rate_hz)
    rate_wpm = int(rng.integers(135, 200))
    pitch = int(np.clip(plan.voice.base_pitch + rng.integers(-12, 13), 5, 95))
    pitch_range = int(rng.integers(30, 80))
    pool = sentences(plan.voice.language)
    parts: list[NDArray[np.float32]] = []
    phonemes: list[Phoneme] = []
    texts: list[str] = []
    length = int(rng.uniform(0.1, 0.45) * rate_hz)
    parts.append(np.zeros(length, np.float32))
    while total - length > 0.8 * rate_hz or not texts:
        text = pool[int(rng.integers(len(pool)))]
        utt = synth.synthesise(text, plan.voice.espeak, rate_wpm, pitch, pitch_range)
        audio = resample(utt.samples.astype(np.float32) / 32768.0, utt.sample_rate_hz, rate_hz)
        offset_s = length / rate_hz
        phonemes += [Phoneme(p.symbol, p.start_s + offset_s) for p in utt.phonemes]
        texts.append(text)
        gap = np.zeros(int(rng.uniform(0.25, 0.6) * rate_hz), np.float32)
        parts += [audio.astype(np.float32), gap]
        length += len(audio) + len(gap)
    samples = np.concatenate(parts)[:total]
    samples = np.pad(samples, (0, total - len(samples)))
    fade = min(int(0.02 * rate_hz), total)
    samples[total - fade :] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(samples).max(initial=0.0))
    if peak > 0:
        samples *= rng.uniform(0.5, 0.9) / peak
    phonemes = [p for p in phonemes if p.start_s < plan.seconds]
    info = {"text": texts, "rate_wpm": rate_wpm, "pitch": pitch, "pitch_range": pitch_range}
    return samples.astype(np.float32), phonemes, info


def _smooth_noise(rng: np.random.Generator, n: int, fps: float, amplitude: float) -> NDArray[np.float64]:
    """A slow random signal: three sinusoids between 0.05 and 0.6 Hz."""
    t = np.arange(n) / fps
    out = np.zeros(n)
    for _ in range(3):
        out += np.sin(2 * np.pi * rng.uniform(0.05, 0.6) * t + rng.uniform(0, 2 * np.pi))
    return amplitude * out / 3.0


def _blinks(rng: np.random.Generator, n: int, fps: float) -> NDArray[np.float64]:
    out = np.zeros(n)
    t = rng.uniform(0.3, 3.0)
    while t < n / fps:
        dur = rng.uniform(0.12, 0.25)
        frames = np.arange(n) / fps
        phase = (frames - t) / dur
        out = np.maximum(
            out, np.clip(1.0 - np.abs(2.0 * phase - 1.0), 0.0, 1.0) * (phase >= 0) * (phase <= 1)
        )
        t += rng.uniform(1.8, 5.5)
    return np.clip(out * 1.3, 0.0, 1.0)


def render_clip(plan: ClipPlan, cfg: RenderConfig, out_dir: Path, tracker: FaceMeshTracker) -> Path:
    """Writes NAME.mp4, NAME.wav, NAME.npz and (last) NAME.json; returns the json path."""
    rng = np.random.default_rng(np.random.SeedSequence([plan.seed, plan.index]))
    speech_seed = int(rng.integers(1 << 31))
    samples, phonemes, speech_info = run_isolated(
        lambda synth: _speech(plan, np.random.default_rng(speech_seed), synth, cfg.sample_rate_hz),
        speech_seed,
    )
    n_steps = int(np.ceil(plan.seconds / STEP_S)) + 1
    pauses = pause_mask(samples, cfg.sample_rate_hz, n_steps)
    track = mouth_track([(p.symbol, p.start_s) for p in phonemes], plan.seconds, cfg.fps, pauses)
    n = len(track.jaw)
    still = make_still(plan.face, rng, tracker, cfg.size)
    animator = FaceAnimator(still.image, still.points)
    centre = still.points.mean(0).astype(np.float64)
    angle = _smooth_noise(rng, n, cfg.fps, np.radians(rng.uniform(0.5, 2.5)))
    shift_x = _smooth_noise(rng, n, cfg.fps, rng.uniform(0.5, 3.0))
    shift_y = _smooth_noise(rng, n, cfg.fps, rng.uniform(0.5, 2.0))
    scale = 1.0 + _smooth_noise(rng, n, cfg.fps, rng.uniform(0.0, 0.02))
    gain = 1.0 + _smooth_noise(rng, n, cfg.fps, rng.uniform(0.0, 0.06))
    tint = 1.0 + np.outer(_smooth_noise(rng, n, cfg.fps, rng.uniform(0.0, 0.03)), [1.0, 0.0, -1.0])
    blink = _blinks(rng, n, cfg.fps)
    landmarks = np.zeros((n, 468, 2), np.float32)
    name = plan.name
    with Mp4Writer(out_dir / f"{name}.mp4", cfg.fps, (cfg.size, cfg.size), cfg.sample_rate_hz) as writer:
        for t in range(n):
            c, s = scale[t] * np.cos(angle[t]), scale[t] * np.sin(angle[t])
            rot = np.array([[c, -s], [s, c]])
            head = np.zeros((2, 3))
            head[:, :2] = rot
            head[:, 2] = centre - rot @ centre + [shift_x[t], shift_y[t]]
            pose = Pose(
                float(track.jaw[t]), float(track.width[t]), float(track.rounding[t]), float(blink[t]), head
            )
            frame, pts = animator.render(pose)
            lit = np.clip(frame.astype(np.float32) * (gain[t] * tint[t]).astype(np.float32), 0, 255)
            writer.write(lit.astype(np.uint8))
            landmarks[t] = pts
        writer.close(samples)
    write_wav(out_dir / f"{name}.wav", samples, cfg.sample_rate_hz)
    tmp_npz = out_dir / f".{name}.{os.getpid()}.partial.npz"
    np.savez_compressed(
        tmp_npz,
        landmarks=landmarks,
        mouth_outer=np.array(MOUTH_OUTER, np.int32),
        mouth_inner=np.array(MOUTH_INNER, np.int32),
    )
    tmp_npz.replace(out_dir / f"{name}.npz")
    meta = {
        "name": name,
        "fps": cfg.fps,
        "sample_rate_hz": cfg.sample_rate_hz,
        "seconds": plan.seconds,
        "n_frames": n,
        "size": cfg.size,
        "split": plan.split,
        "voice": plan.voice.name,
        "espeak_voice": plan.voice.espeak,
        "language": plan.voice.language,
        "face": plan.face,
        **speech_info,
        "mouth_open": [round(float(x), 4) for x in track.jaw],
        "lip_width": [round(float(x), 4) for x in track.width],
        "lip_rounding": [round(float(x), 4) for x in track.rounding],
        "blink": [round(float(x), 4) for x in blink],
        "visemes": list(track.visemes),
        "phonemes": [{"symbol": p.symbol, "start_s": round(p.start_s, 4)} for p in phonemes],
        "landmarks": f"{name}.npz",
    }
    path = out_dir / f"{name}.json"
    tmp = out_dir / f".{name}.{os.getpid()}.partial.json"
    tmp.write_text(json.dumps(meta, ensure_ascii=False))
    tmp.replace(path)
    return path
