"""Audio features shared by training and the real-time path: numpy only (no torch).

Convention (Wav2Lip-family datasets and evaluation tools): 16 kHz mono, pre-emphasis 0.97,
STFT magnitude with a periodic Hann window of 800 samples, n_fft 800, hop 200 (80 mel frames
per second, 3.2 per video frame at 25 fps), 80 Slaney mel bands from 55 to 7600 Hz with Slaney
area normalisation, `20*log10(max(1e-5, x)) - 20` dB, then `clip(8*(S+100)/100 - 4, -4, 4)`.

Framing rule (one rule for offline and streaming): the signal is padded with n_fft//2 zeros at
the start (librosa's `center=True, pad_mode="constant"`), frame k covers padded samples
[k*hop, k*hop + n_fft) and is therefore centred on sample k*hop of the signal. A streaming
extractor emits frame k as soon as its last sample has arrived; `flush()` pads n_fft//2 zeros
at the end, as librosa does, and emits the rest. `log_mel(x)` is exactly `push(x)` + `flush()`,
so it has `1 + len(x)//hop` frames like librosa, and any chunking gives the same frames.
Pre-emphasis starts from a zero sample before the signal (as `scipy.signal.lfilter` does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.errors import UserError

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class MelConfig:
    sample_rate_hz: int = 16_000
    n_mels: int = 80
    n_fft: int = 800
    hop_length: int = 200
    win_length: int = 800
    fmin_hz: float = 55.0
    fmax_hz: float = 7600.0
    preemphasis: float = 0.97
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0

    @property
    def mel_fps(self) -> float:
        """Mel frames per second (80 at the defaults)."""
        return self.sample_rate_hz / self.hop_length

    @property
    def silence_value(self) -> float:
        """The normalised value digital silence maps to (the floor of the scale)."""
        return -self.max_abs_value


def _hz_to_mel(hz: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above."""
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    mel = hz / f_sp
    above = hz >= min_log_hz
    mel[above] = min_log_mel + np.log(hz[above] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: NDArray[np.float64]) -> NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3.0, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    hz = mel * f_sp
    above = mel >= min_log_mel
    hz[above] = min_log_hz * np.exp(logstep * (mel[above] - min_log_mel))
    return hz


def mel_filterbank(cfg: MelConfig) -> NDArray[np.float64]:
    """Triangular Slaney filters with area normalisation, shaped (n_mels, 1 + n_fft//2)."""
    fft_hz = np.linspace(0.0, cfg.sample_rate_hz / 2.0, 1 + cfg.n_fft // 2)
    mel_edges = np.linspace(
        _hz_to_mel(np.array([cfg.fmin_hz]))[0], _hz_to_mel(np.array([cfg.fmax_hz]))[0], cfg.n_mels + 2
    )
    edges_hz = _mel_to_hz(mel_edges)
    lower, centre, upper = edges_hz[:-2, None], edges_hz[1:-1, None], edges_hz[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= 2.0 / (upper - lower)  # equal area per band
    return weights


def _hann_periodic(n: int) -> NDArray[np.float64]:
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


class StreamingMel:
    """Log-mel frames from audio arriving in chunks of any size.

    `push(chunk)` returns the frames completed by the chunk, shaped (n_mels, k) float32
    (k may be 0). `flush()` ends the stream and returns the last frames. `frames_emitted`
    counts the frames returned so far: frame k is centred at `k / cfg.mel_fps` seconds.
    """

    def __init__(self, cfg: MelConfig = MelConfig()) -> None:
        if cfg.win_length > cfg.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        self.cfg = cfg
        self._filters = mel_filterbank(cfg)
        window = np.zeros(cfg.n_fft)
        offset = (cfg.n_fft - cfg.win_length) // 2
        window[offset : offset + cfg.win_length] = _hann_periodic(cfg.win_length)
        self._window = window
        self._buffer = np.zeros(cfg.n_fft // 2, dtype=np.float64)
        self._last_sample = 0.0
        self._finished = False
        self.frames_emitted = 0

    def push(self, chunk: NDArray[np.floating[Any]] | NDArray[np.integer[Any]]) -> FloatArray:
        if self._finished:
            raise RuntimeError("StreamingMel.push after flush")
        x = np.asarray(chunk, dtype=np.float64).reshape(-1)
        if x.size:
            emphasised = np.empty_like(x)
            emphasised[0] = x[0] - self.cfg.preemphasis * self._last_sample
            emphasised[1:] = x[1:] - self.cfg.preemphasis * x[:-1]
            self._last_sample = float(x[-1])
            self._buffer = np.concatenate([self._buffer, emphasised])
        return self._drain()

    def flush(self) -> FloatArray:
        """Pads the end like librosa (n_fft//2 zeros) and returns the remaining frames."""
        if self._finished:
            return np.zeros((self.cfg.n_mels, 0), dtype=np.float32)
        self._buffer = np.concatenate([self._buffer, np.zeros(self.cfg.n_fft // 2)])
        frames = self._drain()
        self._finished = True
        return frames

    def _drain(self) -> FloatArray:
        cfg = self.cfg
        if self._buffer.size < cfg.n_fft:
            return np.zeros((cfg.n_mels, 0), dtype=np.float32)
        count = (self._buffer.size - cfg.n_fft) // cfg.hop_length + 1
        frames = np.lib.stride_tricks.sliding_window_view(self._buffer, cfg.n_fft)[:: cfg.hop_length][:count]
        magnitude = np.abs(np.fft.rfft(frames * self._window, axis=1))  # (count, 1 + n_fft//2)
        mel = self._filters @ magnitude.T  # (n_mels, count)
        self._buffer = self._buffer[count * cfg.hop_length :]
        self.frames_emitted += count
        return normalise_db(mel, cfg)


def normalise_db(mel_magnitude: NDArray[np.float64], cfg: MelConfig) -> FloatArray:
    """Mel magnitude -> the normalised dB scale in [-max_abs, max_abs]."""
    db = 20.0 * np.log10(np.maximum(1e-5, mel_magnitude)) - cfg.ref_level_db
    scaled = 2.0 * cfg.max_abs_value * (db - cfg.min_level_db) / (-cfg.min_level_db) - cfg.max_abs_value
    return np.clip(scaled, -cfg.max_abs_value, cfg.max_abs_value).astype(np.float32)


def log_mel(
    samples: NDArray[np.floating[Any]] | NDArray[np.integer[Any]], cfg: MelConfig = MelConfig()
) -> FloatArray:
    """Log-mel spectrogram of a whole signal at cfg.sample_rate_hz, shaped (n_mels, 1 + len//hop)."""
    stream = StreamingMel(cfg)
    return np.concatenate([stream.push(samples), stream.flush()], axis=1)


# --- pairing video frames with mel windows -------------------------------------------------


def mel_window_start(
    frame_index: int, fps: float, lookahead_ms: float, window_frames: int, cfg: MelConfig = MelConfig()
) -> int:
    """First mel frame of the window paired with video frame `frame_index`.

    The window holds `window_frames` mel frames and ends `lookahead_ms` after the frame's
    instant: it covers [t + lookahead - window, t + lookahead). With the 16-frame (200 ms)
    window, lookahead 200 ms is Wav2Lip's convention (the window starts at the frame) and is
    the one AVSyncNet uses for 5 video frames; the generator uses a smaller look-ahead.
    """
    t_s = frame_index / fps
    window_s = window_frames / cfg.mel_fps
    return round((t_s + lookahead_ms / 1000.0 - window_s) * cfg.mel_fps)


def mel_window(mel: FloatArray, start: int, window_frames: int, cfg: MelConfig = MelConfig()) -> FloatArray:
    """mel[:, start:start+window_frames], padded with silence where it runs off either end."""
    n_mels, total = mel.shape
    out = np.full((n_mels, window_frames), cfg.silence_value, dtype=np.float32)
    lo, hi = max(start, 0), min(start + window_frames, total)
    if hi > lo:
        out[:, lo - start : hi - start] = mel[:, lo:hi]
    return out


# --- format edges: mono, rate -------------------------------------------------------------


def to_mono_float(samples: NDArray[np.generic], name: str = "audio") -> NDArray[np.float32]:
    """(n,) or (n, channels) integer or float samples -> (n,) float32 in [-1, 1] (channel mean)."""
    x: NDArray[Any] = np.asarray(samples)
    if x.ndim not in (1, 2):
        raise UserError(f"{name}: expected samples shaped (n,) or (n, channels), got {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64) / float(np.iinfo(x.dtype.type).max + 1)  # type: ignore[type-var]
    elif not np.issubdtype(x.dtype, np.floating):
        raise UserError(f"{name}: expected integer or float samples, got {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return x.astype(np.float32)


def resample(
    samples: NDArray[np.float32], from_hz: int, to_hz: int, name: str = "audio"
) -> NDArray[np.float32]:
    """Polyphase resampling of a whole mono signal; a clear error for rates that cannot be used."""
    if from_hz <= 0 or to_hz <= 0:
        raise UserError(f"{name}: sample rate must be positive, got {from_hz} Hz")
    if from_hz == to_hz:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    ratio = Fraction(to_hz, from_hz)
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(np.float32)


def prepare_audio(
    samples: NDArray[np.generic], rate_hz: int, cfg: MelConfig = MelConfig(), name: str = "audio"
) -> NDArray[np.float32]:
    """Any channel layout and rate -> mono float32 at cfg.sample_rate_hz."""
    return resample(to_mono_float(samples, name), int(rate_hz), cfg.sample_rate_hz, name)
