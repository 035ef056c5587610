"""What a test or benchmark client sends: a clip (frames + audio), with timing marks.

Marks make glass-to-glass and A/V offset measurable at a receiver without trusting any clock
but its own: each sent frame carries its index as black/white cells in a strip along the top
edge (away from the mouth, so the filter leaves it alone), and the audio carries a 20 ms 12 kHz
tone at the start of every second (above the 8 kHz the 16 kHz lip-sync audio keeps, so it does
not drive the mouth). Frame `k*fps` and tone k start at the same instant of the clip.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

UInt8Array = NDArray[np.uint8]
FloatArray = NDArray[np.float32]
MARK_BITS = 12  # frame index modulo 4096 (164 s at 25 fps)
CHECK_BITS = 8  # CRC-8 of the index: any one, two or three wrong cells are caught
CRC8_POLY = 0x07  # x^8 + x^2 + x + 1
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


def _even(frames: UInt8Array) -> UInt8Array:
    """Encoders want even sizes (yuv420)."""
    h, w = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return np.ascontiguousarray(frames[:, :h, :w])


def load_clip(path: str | Path, max_seconds: float | None = None) -> Clip:
    """A prepared clip folder (frames.npy + audio.wav + meta.json), a video file with audio, or a
    face image with `speech.wav` beside it (the still face repeated for the speech's length)."""
    from stablesync.media import iter_video_frames, read_audio, video_info

    path = Path(path)
    if path.is_dir() and (path / "frames.npy").exists():
        frames = np.load(path / "frames.npy")
        audio = read_audio(path / "audio.wav", SEND_RATE_HZ)
        meta = path / "meta.json"
        fps = float(json.loads(meta.read_text()).get("fps", 25.0)) if meta.exists() else 25.0
    elif path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        from stablesync.realtime.local.sources import load_image

        audio, fps = read_audio(path.with_name("speech.wav"), SEND_RATE_HZ), 25.0
        frames = np.repeat(load_image(path)[None], max(1, int(len(audio) / SEND_RATE_HZ * fps)), axis=0)
    else:
        fps = video_info(path)[0]
        frames = np.stack([image for image, _ in iter_video_frames(path)])
        audio = read_audio(path, SEND_RATE_HZ)
    clip = Clip(_even(np.asarray(frames, np.uint8)), fps, audio, path.stem)
    if max_seconds is not None and clip.duration_s > max_seconds:
        n = int(max_seconds * fps)
        clip = dataclasses.replace(
            clip, frames=clip.frames[:n], audio=clip.audio[: int(n / fps * SEND_RATE_HZ)]
        )
    return clip


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


def _crc8(value: int) -> int:
    """CRC-8 (polynomial `CRC8_POLY`) of the `MARK_BITS`-bit `value`, most significant bit first."""
    crc = 0
    for b in range(MARK_BITS - 1, -1, -1):
        top = ((crc >> 7) & 1) ^ ((value >> b) & 1)
        crc = ((crc << 1) & 0xFF) ^ (CRC8_POLY if top else 0)
    return crc


def _code(index: int) -> list[int]:
    value = index % (1 << MARK_BITS)
    word = (value << CHECK_BITS) | _crc8(value)
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
    return value if _crc8(value) == word & ((1 << CHECK_BITS) - 1) else None


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
