"""Inputs for checking exported graphs: random ones, and corpus-like ones.

Corpus-like inputs come, in order of preference, from a prepared dataset (`--corpus DIR`, the
layout of `stablesync data prepare`), from the bundled demo assets (face.png resized to the
crop size and the mel of speech.wav), or else are synthesised: face-like images (skin-toned
oval, eyes, mouth, soft shading) and the mel of a voiced, syllable-modulated harmonic signal.
Either way they sit in the value ranges real inputs have, which random noise does not.
Numpy only (no torch): the benchmarks and the int8 check use them too.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from stablesync.audio import MelConfig, log_mel, mel_window, mel_window_start, prepare_audio
from stablesync.bundled import DEMO_DIR
from stablesync.errors import UserError

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class SampleInputs:
    images: FloatArray  # (N, 3, S, S) in [0, 1]: references
    frames: FloatArray  # (N, 3, S, S) in [0, 1]: target crops
    mels: FloatArray  # (N, 1, n_mels, W)
    source: str


@dataclass(frozen=True)
class InputSpec:
    image_size: int
    window_frames: int
    fps: float
    lookahead_ms: float
    mel: MelConfig


def random_inputs(spec: InputSpec, n: int, seed: int = 0) -> SampleInputs:
    rng = np.random.default_rng(seed)
    s = spec.image_size
    lim = spec.mel.max_abs_value
    return SampleInputs(
        images=rng.random((n, 3, s, s), dtype=np.float32),
        frames=rng.random((n, 3, s, s), dtype=np.float32),
        mels=rng.uniform(-lim, lim, (n, 1, spec.mel.n_mels, spec.window_frames)).astype(np.float32),
        source="random",
    )


def _windows(mel: FloatArray, spec: InputSpec, n: int, offset: int = 5) -> FloatArray:
    out = [
        mel_window(
            mel,
            mel_window_start(offset + i, spec.fps, spec.lookahead_ms, spec.window_frames, spec.mel),
            spec.window_frames,
            spec.mel,
        )
        for i in range(n)
    ]
    return np.stack(out)[:, None].astype(np.float32)


def _from_corpus(spec: InputSpec, n: int, corpus: Path) -> SampleInputs:
    meta_path = corpus / "dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{meta_path}: not a prepared dataset ({str(exc).splitlines()[0]})") from None
    if meta.get("size") != spec.image_size:
        raise UserError(f"{meta_path}: crops of size {meta.get('size')}, the export needs {spec.image_size}")
    clips = sorted(p for p in (corpus / "clips").iterdir() if (p / "frames.npy").is_file())
    if not clips:
        raise UserError(f"{corpus / 'clips'}: no clips with frames.npy")
    images, frames, mels = [], [], []
    for k in range(n):
        clip = clips[k % len(clips)]
        video = np.load(clip / "frames.npy", mmap_mode="r")  # (T, S, S, 3) uint8
        mel = np.load(clip / "mel.npy").astype(np.float32)
        t = (3 * k) % len(video)
        images.append(np.asarray(video[0]).transpose(2, 0, 1) / 255.0)
        frames.append(np.asarray(video[t]).transpose(2, 0, 1) / 255.0)
        mels.append(_windows(mel, spec, 1, offset=t)[0])
    return SampleInputs(
        images=np.stack(images).astype(np.float32),
        frames=np.stack(frames).astype(np.float32),
        mels=np.stack(mels),
        source=f"corpus {corpus}",
    )


def _read_wav(path: Path) -> FloatArray:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise UserError(f"{path}: expected 16-bit PCM")
        raw = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
        return prepare_audio(raw, w.getframerate())


def _synthetic_faces(s: int, n: int, rng: np.random.Generator) -> FloatArray:
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    out = []
    for _ in range(n):
        skin = np.array([0.85, 0.65, 0.5], dtype=np.float32) * rng.uniform(0.6, 1.1)
        img = np.tile(np.array([0.3, 0.35, 0.4], dtype=np.float32)[:, None, None], (1, s, s))
        oval = ((xx - 0.5) / 0.36) ** 2 + ((yy - 0.55) / 0.46) ** 2 < 1.0
        shade = 0.8 + 0.2 * (1.0 - xx)
        img[:, oval] = (skin[:, None] * shade[oval][None, :]).astype(np.float32)
        for ex in (0.35, 0.65):
            eye = ((xx - ex) / 0.06) ** 2 + ((yy - 0.42) / 0.03) ** 2 < 1.0
            img[:, eye] = 0.15
        mouth_open = rng.uniform(0.01, 0.06)
        mouth = ((xx - 0.5) / 0.13) ** 2 + ((yy - 0.72) / mouth_open) ** 2 < 1.0
        img[:, mouth] = np.array([0.45, 0.15, 0.15], dtype=np.float32)[:, None]
        img += rng.normal(0.0, 0.02, img.shape).astype(np.float32)
        out.append(np.clip(img, 0.0, 1.0))
    return np.stack(out).astype(np.float32)


def _synthetic_speech(cfg: MelConfig, seconds: float, rng: np.random.Generator) -> FloatArray:
    rate = cfg.sample_rate_hz
    t = np.arange(int(seconds * rate)) / rate
    f0 = 120.0 + 20.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formant = 700.0 + 400.0 * np.sin(2 * np.pi * 3.0 * t)  # vowel-like sweep
    voice = sum(np.sin(k * phase) * np.exp(-(((k * f0 - formant) / 500.0) ** 2)) for k in range(1, 30))
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None)  # ~4 syllables/s, pauses between
    signal = 0.3 * voice * syllables + 0.003 * rng.normal(size=t.shape)
    return signal.astype(np.float32)


def corpus_like_inputs(spec: InputSpec, n: int, corpus: Path | None = None, seed: int = 1) -> SampleInputs:
    if corpus is not None:
        return _from_corpus(spec, n, corpus)
    rng = np.random.default_rng(seed)
    s = spec.image_size
    face_png, speech = DEMO_DIR / "face.png", DEMO_DIR / "speech.wav"
    if face_png.is_file() and speech.is_file():
        import cv2

        bgr = cv2.imread(str(face_png), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UserError(f"{face_png}: not a readable image")
        face = cv2.resize(bgr[:, :, ::-1], (s, s), interpolation=cv2.INTER_AREA).transpose(2, 0, 1) / 255.0
        faces = np.repeat(face[None].astype(np.float32), n, axis=0)
        jitter = rng.normal(0.0, 0.01, faces.shape).astype(np.float32)
        mel = log_mel(_read_wav(speech), spec.mel)
        return SampleInputs(
            images=faces,
            frames=np.clip(faces + jitter, 0.0, 1.0),
            mels=_windows(mel, spec, n),
            source="demo assets (face.png resized, speech.wav)",
        )
    mel = log_mel(_synthetic_speech(spec.mel, 2.0, rng), spec.mel)
    return SampleInputs(
        images=_synthetic_faces(s, n, rng),
        frames=_synthetic_faces(s, n, rng),
        mels=_windows(mel, spec, n),
        source="synthetic faces and speech-like audio",
    )
