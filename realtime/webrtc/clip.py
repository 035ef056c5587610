"""What a test or benchmark client sends: a clip (frames + audio), with timing marks.

Marks make glass-to-glass and A/V offset measurable at a receiver without trusting any clock
but its own: each sent frame carries its index as black/white cells in a strip along the top
edge (away from the mouth, so the filter leaves it alone), and the audio carries a 20 ms 12 kHz
tone at the start of every second (above the 8 kHz the 16 kHz lip-sync audio keeps, so it does
not drive the mouth). Frame `k*fps` and tone k start at the same instant of the clip.
"""

from __future__ import annotations

import dataclasses
import wave
from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

from stablesync.audio import prepare_audio, resample
from stablesync.errors import UserError

UInt8Array = NDArray[np.uint8]
FloatArray = NDArray[np.float32]
MARK_BITS = 12  # frame index modulo 4096 (164 s at 25 fps)
CHECK_BITS = 4
MARK_TONE_HZ = 12_000.0
MARK_TONE_S = 0.02
SEND_RATE_HZ = 48_000


@dataclasses.dataclass(frozen=True)
class Clip:
    frames: UInt8Array  # (T, H, W, 3) RGB
    fps: float
    audio: FloatArray  # mono float32 at SEND_RATE_HZ
    name: str = "clip"

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def _read_wav(path: Path) -> tuple[FloatArray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise UserError(f"{path}: expected 16-bit PCM audio")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return (data.reshape(-1, w.getnchannels()).mean(axis=1) / 32768.0).astype(
            np.float32
        ), w.getframerate()


def _even(frames: UInt8Array) -> UInt8Array:
    """Encoders want even sizes (yuv420)."""
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return np.ascontiguousarray(frames[:, :h, :w])


def load_clip(path: str | Path, max_seconds: float | None = None) -> Clip:
    """A prepared clip folder (frames.npy + audio.wav), a video file with audio, or an image + wav
    (`face.png` beside `speech.wav`: the still face is repeated for the speech's length)."""
    path = Path(path)
    if path.is_dir() and (path / "frames.npy").exists():
        frames = np.load(path / "frames.npy")
        audio, rate = _read_wav(path / "audio.wav")
        fps = 25.0
        meta = path / "meta.json"
        if meta.exists():
            import json

            fps = float(json.loads(meta.read_text()).get("fps", fps))
    elif path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        wav = path.with_name("speech.wav")
        if not wav.exists():
            raise UserError(f"{path}: a still face needs speech.wav beside it")
        audio, rate = _read_wav(wav)
        with av.open(str(path)) as container:
            image = next(container.decode(video=0)).to_ndarray(format="rgb24")
        fps = 25.0
        frames = np.repeat(image[None], max(1, int(len(audio) / rate * fps)), axis=0)
    else:
        try:
            frames, fps, audio, rate = _decode_media(path)
        except (av.error.FFmpegError, StopIteration, OSError) as exc:
            raise UserError(f"{path}: expected a video file with audio ({exc})") from None
    clip = Clip(_even(np.asarray(frames, np.uint8)), fps, resample(audio, rate, SEND_RATE_HZ), path.stem)
    if max_seconds is not None and clip.duration_s > max_seconds:
        n = int(max_seconds * fps)
        clip = dataclasses.replace(
            clip, frames=clip.frames[:n], audio=clip.audio[: int(n / fps * SEND_RATE_HZ)]
        )
    return clip


def _decode_media(path: Path) -> tuple[UInt8Array, float, FloatArray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise UserError(f"{path}: expected an audio track")
        rate = container.streams.audio[0].rate
        chunks = [f.to_ndarray() for f in container.decode(audio=0)]
    samples = np.concatenate([c.T if c.shape[0] < c.shape[-1] else c for c in chunks], axis=0)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    return frames.astype(np.uint8), fps, prepare_audio(samples, rate, name=str(path)), 16_000


def synthetic_clip(seconds: float = 4.0, size: tuple[int, int] = (240, 320), fps: float = 25.0) -> Clip:
    """A moving gradient and a 220 Hz hum: enough to carry marks when no face matters."""
    n = int(seconds * fps)
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.stack([((xx + yy + 4 * i) % 256).astype(np.uint8) for i in range(n)])
    rgb = np.stack([frames, np.flip(frames, axis=2), np.full_like(frames, 96)], axis=-1)
    t = np.arange(int(seconds * SEND_RATE_HZ)) / SEND_RATE_HZ
    return Clip(rgb, fps, (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), "synthetic")


# --- marks --------------------------------------------------------------------------------------


def _code(index: int) -> list[int]:
    value = index % (1 << MARK_BITS)
    check = (value * 7 + 3) % (1 << CHECK_BITS)
    word = (value << CHECK_BITS) | check
    return [(word >> b) & 1 for b in range(MARK_BITS + CHECK_BITS - 1, -1, -1)]


def mark_height_px(height: int) -> int:
    return max(8, height // 16) // 2 * 2


def draw_mark(frame: UInt8Array, index: int) -> UInt8Array:
    """A copy of `frame` with `index` drawn as cells along the top edge."""
    out = frame.copy()
    bits = _code(index)
    cell_w = out.shape[1] // len(bits)
    strip = out[: mark_height_px(out.shape[0])]
    for i, bit in enumerate(bits):
        strip[:, i * cell_w : (i + 1) * cell_w] = 255 if bit else 0
    return out


def read_mark(frame: UInt8Array) -> int | None:
    """The index drawn by `draw_mark` (modulo 4096), or None when the strip is not a valid mark."""
    n = MARK_BITS + CHECK_BITS
    cell_w = frame.shape[1] // n
    h = mark_height_px(frame.shape[0])
    if cell_w < 4:
        return None
    bits = []
    for i in range(n):
        cell = frame[h // 4 : 3 * h // 4, i * cell_w + cell_w // 4 : (i + 1) * cell_w - cell_w // 4]
        level = float(cell.mean())
        if 70 < level < 185:
            return None
        bits.append(1 if level >= 128 else 0)
    word = int("".join(map(str, bits)), 2)
    value = word >> CHECK_BITS
    return value if (value * 7 + 3) % (1 << CHECK_BITS) == word & ((1 << CHECK_BITS) - 1) else None


def add_tone_marks(audio: FloatArray, rate_hz: int = SEND_RATE_HZ) -> FloatArray:
    out = audio.copy()
    n = int(MARK_TONE_S * rate_hz)
    tone = (0.25 * np.sin(2 * np.pi * MARK_TONE_HZ * np.arange(n) / rate_hz)).astype(np.float32)
    for start in range(0, len(out) - n, rate_hz):
        out[start : start + n] = out[start : start + n] * 0.5 + tone
    return out


def tone_onset(samples: FloatArray, rate_hz: int) -> int | None:
    """The sample where a mark tone starts in this chunk, or None (energy near 12 kHz vs total)."""
    if rate_hz < 2.5 * MARK_TONE_HZ or samples.size < 64:
        return None
    block = 48 * rate_hz // 48_000
    blocks = samples[: samples.size // block * block].reshape(-1, block).astype(np.float64)
    t = np.arange(block) / rate_hz
    ref = np.exp(-2j * np.pi * MARK_TONE_HZ * t)
    tone_power = np.abs(blocks @ ref) ** 2 / block  # a tone of amplitude A gives A^2 * block / 4
    energy = np.square(blocks).sum(axis=1)  # ... and A^2 * block / 2 here
    hit = np.nonzero((tone_power > 0.25 * energy) & (tone_power > 0.03**2 * block / 4))[0]
    return int(hit[0] * block) if hit.size else None
