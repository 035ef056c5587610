"""The audio the call hears keeps the input's rate and channels (the model alone gets 16 kHz
mono): the streaming resampler joins chunks without seams, a 48 kHz stereo file comes out of
`run` as 48 kHz stereo, and a real (PulseAudio) microphone is recorded at its own rate."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import av
import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.signal import resample_poly

from stablesync.cli import main as cli_main
from stablesync.realtime.local.sources import MicSource, StreamResampler
from stablesync.realtime.pipeline.clock import StreamClock
from stablesync.realtime.pipeline.frames import AudioChunk


@pytest.mark.parametrize(("from_hz", "block"), [(48_000, 960), (44_100, 441), (48_000, 1000)])
def test_stream_resampler_joins_chunks_like_one_signal(from_hz: int, block: int) -> None:
    x = np.random.default_rng(0).standard_normal(from_hz).astype(np.float32)
    whole = resample_poly(x, *_ratio(from_hz, 16_000)).astype(np.float32)
    resampler = StreamResampler(from_hz, 16_000)
    parts = [resampler.push(x[i : i + block]) for i in range(0, x.size, block)]
    chunked = np.concatenate(parts)
    assert whole.size - chunked.size <= resampler.reach  # only the last reach is held back
    np.testing.assert_allclose(chunked, whole[: chunked.size], atol=1e-5)


def _ratio(from_hz: int, to_hz: int) -> tuple[int, int]:
    from fractions import Fraction

    r = Fraction(to_hz, from_hz)
    return r.numerator, r.denominator


def _dominant_hz(x: NDArray[np.float32], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spectrum))])


def test_run_writes_the_input_rate_and_channels(rt_face_photo: Path, tmp_path: Path) -> None:
    rate = 48_000
    t = np.arange(int(1.2 * rate)) / rate
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1500 * t)], 1) * 0.3
    wav = tmp_path / "speech48k.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((stereo * 32767).astype("<i2").tobytes())
    out = tmp_path / "out.mp4"
    args = ["run", "--face", str(rt_face_photo), "--audio", str(wav), "--fast", "--out", str(out), "--quiet"]
    assert cli_main(args) == 0
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.rate == rate and len(stream.layout.channels) == 2
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        planes = [f.to_ndarray() for frame in container.decode(stream) for f in resampler.resample(frame)]
    decoded = np.concatenate(planes, axis=1)
    assert decoded.shape[1] == pytest.approx(stereo.shape[0], abs=2048)  # AAC priming and padding
    middle = decoded[:, rate // 4 : rate // 4 + rate // 2]
    assert _dominant_hz(middle[0], rate) == pytest.approx(440, abs=5)  # each channel kept its own
    assert _dominant_hz(middle[1], rate) == pytest.approx(1500, abs=5)  # sound, not their mix


async def test_a_microphone_is_recorded_at_its_own_rate(pulse_server: str) -> None:
    mic = MicSource("pulse", sample_rate_hz=16_000)
    await mic.open()
    rate, channels = mic.output_format
    assert rate in (44_100, 48_000) and channels in (1, 2)  # PulseAudio's own format, not 16 kHz
    chunks: list[AudioChunk] = []

    async def keep(chunk: AudioChunk) -> None:
        chunks.append(chunk)
        if len(chunks) == 10:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(mic.run(keep, StreamClock()), 20)
    await mic.close()
    for chunk in chunks:
        assert chunk.sample_rate_hz == 16_000 and chunk.samples.ndim == 1
        assert chunk.captured is not None and chunk.captured.sample_rate_hz == rate
        assert chunk.captured.samples.shape[1] == channels
    model = sum(c.samples.shape[0] for c in chunks)
    captured = sum(c.playable().samples.shape[0] for c in chunks)
    assert model == pytest.approx(captured * 16_000 / rate, abs=40)  # the same stretch of time
