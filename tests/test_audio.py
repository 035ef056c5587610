import librosa
import numpy as np
import pytest
import scipy.signal

from stablesync.audio import (
    MelConfig,
    StreamingMel,
    log_mel,
    mel_filterbank,
    mel_window,
    mel_window_start,
    prepare_audio,
)
from stablesync.errors import UserError

CFG = MelConfig()


def _speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * CFG.sample_rate_hz)) / CFG.sample_rate_hz
    tone = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (tone + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def _librosa_reference(x: np.ndarray) -> np.ndarray:
    emphasised = scipy.signal.lfilter([1, -CFG.preemphasis], [1], x)
    spec = np.abs(
        librosa.stft(
            y=emphasised,
            n_fft=CFG.n_fft,
            hop_length=CFG.hop_length,
            win_length=CFG.win_length,
            center=True,
            pad_mode="constant",
        )
    )
    fb = librosa.filters.mel(
        sr=CFG.sample_rate_hz,
        n_fft=CFG.n_fft,
        n_mels=CFG.n_mels,
        fmin=CFG.fmin_hz,
        fmax=CFG.fmax_hz,
        htk=False,
        norm="slaney",
    )
    db = 20 * np.log10(np.maximum(1e-5, fb @ spec)) - CFG.ref_level_db
    return np.clip(8 * (db + 100) / 100 - 4, -4, 4)


def test_filterbank_matches_librosa() -> None:
    ours = mel_filterbank(CFG)
    theirs = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600, htk=False, norm="slaney")
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_log_mel_matches_librosa_interior_frames() -> None:
    x = _speechlike(1.3)
    ours = log_mel(x)
    ref = _librosa_reference(x.astype(np.float64))
    assert ours.shape == ref.shape == (80, 1 + x.size // CFG.hop_length)
    assert ours.dtype == np.float32
    interior = slice(3, -3)
    np.testing.assert_allclose(ours[:, interior], ref[:, interior], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(6))
def test_streaming_equals_offline_for_random_chunkings(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = _speechlike(0.9, seed)
    offline = log_mel(x)
    stream = StreamingMel(CFG)
    parts, pos = [], 0
    while pos < x.size:
        n = int(rng.choice([1, 7, 160, 199, 200, 201, 640, 1333, 4000]))
        parts.append(stream.push(x[pos : pos + n]))
        pos += n
    parts.append(stream.flush())
    streamed = np.concatenate(parts, axis=1)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, rtol=1e-5, atol=1e-5)
    assert stream.frames_emitted == offline.shape[1]


def test_stream_emits_frame_once_its_window_is_complete() -> None:
    stream = StreamingMel(CFG)
    # frame 0 covers 400 padding zeros + the first 400 samples
    assert stream.push(np.zeros(399)).shape == (80, 0)
    assert stream.push(np.zeros(1)).shape == (80, 1)
    assert stream.push(np.zeros(199)).shape == (80, 0)
    assert stream.push(np.zeros(1)).shape == (80, 1)


def test_silence_maps_to_floor() -> None:
    assert np.all(log_mel(np.zeros(3200)) == CFG.silence_value)


def test_mel_window_pairing_and_padding() -> None:
    # Wav2Lip's convention: a 200 ms look-ahead puts the window's start at the frame
    assert mel_window_start(10, 25.0, 200.0, 16) == 32
    assert mel_window_start(10, 25.0, 80.0, 16) == 22
    mel = np.arange(80 * 20, dtype=np.float32).reshape(80, 20)
    w = mel_window(mel, -3, 16)
    assert w.shape == (80, 16)
    assert np.all(w[:, :3] == CFG.silence_value) and np.array_equal(w[:, 3:], mel[:, :13])
    w = mel_window(mel, 15, 16)
    assert np.array_equal(w[:, :5], mel[:, 15:]) and np.all(w[:, 5:] == CFG.silence_value)


def test_prepare_audio_downmixes_and_resamples() -> None:
    t = np.arange(8000) / 8000
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)], axis=1)
    pcm = (stereo * 20000).astype(np.int16)
    out = prepare_audio(pcm, 8000)
    assert out.dtype == np.float32 and out.ndim == 1 and out.size == 16000
    assert 0.55 < np.abs(out).max() < 0.7


def test_prepare_audio_rejects_bad_input() -> None:
    with pytest.raises(UserError, match="sample rate"):
        prepare_audio(np.zeros(10, np.float32), 0)
    with pytest.raises(UserError, match="shaped"):
        prepare_audio(np.zeros((2, 2, 2), np.float32), 16000)
