"""Audio sources: the microphone (sounddevice) and an audio file paced at real time (or fast).

Each chunk carries the model's audio (mono at the model's rate) and, when the input had another
rate or channel layout, the same stretch as the input delivered it (`AudioChunk.captured`),
which the outputs play: a 48 kHz stereo input is heard at 48 kHz stereo.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.audio import MelConfig
from stablesync.errors import UserError
from stablesync.realtime.pipeline.clock import StreamClock
from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk, AudioSamples, CapturedAudio

EmitAudio = Callable[[AudioChunk], Awaitable[None]]
MAX_OUTPUT_CHANNELS = 2  # more are mixed down to stereo


def load_audio_file(path: str | Path, sample_rate_hz: int = MelConfig().sample_rate_hz) -> AudioSamples:
    """Any audio file PyAV reads (any rate, any channels) -> mono float32 at `sample_rate_hz`."""
    from stablesync.media import read_audio

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: audio file not found")
    samples = read_audio(path, sample_rate_hz)
    if samples.shape[0] < sample_rate_hz // 10:
        raise UserError(f"{path}: only {samples.shape[0]} samples; expected at least 0.1 s of audio")
    return samples


def load_captured_audio(path: str | Path) -> CapturedAudio:
    """The file's first audio stream at its own rate and channels (more than two: stereo)."""
    import av

    path = Path(path)
    parts: list[AudioSamples] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError(f"{path}: has no audio stream; expected a file with sound")
            stream = container.streams.audio[0]
            rate = int(stream.rate)
            channels = min(len(stream.layout.channels), MAX_OUTPUT_CHANNELS)
            layout = stream.layout if channels == len(stream.layout.channels) else "stereo"
            resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
            for frame in [*container.decode(stream), None]:
                for out in resampler.resample(frame):
                    parts.append(out.to_ndarray().reshape(-1, channels).astype(np.float32))
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot decode audio ({exc.__class__.__name__}: {exc})") from None
    if not parts:
        raise UserError(f"{path}: the audio stream holds no samples")
    return CapturedAudio(np.concatenate(parts), rate)


class StreamResampler:
    """Resamples a signal that arrives in chunks as if it were resampled whole (scipy's polyphase
    `resample_poly`): each push resamples the new input together with what came before it
    within the filter's reach, and returns only the output whose input has all arrived. The
    output therefore lags the input by the filter's reach (31 samples at 48 -> 16 kHz, 0.65 ms)."""

    def __init__(self, from_hz: int, to_hz: int) -> None:
        ratio = Fraction(to_hz, from_hz)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.from_hz = from_hz
        self.reach = -(-10 * max(self.up, self.down) // self.up) + 1  # input samples either side
        self._buffer = np.zeros(0, np.float32)
        self._buffer_start = 0  # input index of _buffer[0], a multiple of `down`
        self._next_out = 0  # output index of the next sample returned
        from scipy.signal import resample_poly  # loaded here, not in a device's audio callback

        self._resample_poly = resample_poly

    @property
    def next_out_input_pos(self) -> float:
        """Where, in input samples, the next returned sample lies."""
        return self._next_out * self.down / self.up

    def push(self, samples: AudioSamples) -> AudioSamples:
        if self.up == self.down:
            return samples.astype(np.float32, copy=False)
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        end = self._buffer_start + self._buffer.shape[0]
        last = (end - self.reach) * self.up // self.down  # the last output whose input has arrived
        if last < self._next_out:
            return np.zeros(0, np.float32)
        resampled = self._resample_poly(self._buffer, self.up, self.down)
        offset = self._buffer_start * self.up // self.down
        out = resampled[self._next_out - offset : last + 1 - offset].astype(np.float32)
        self._next_out = last + 1
        keep_from = max(0, (self._next_out * self.down // self.up - self.reach) // self.down * self.down)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start :]
            self._buffer_start = keep_from
        return out


class AudioFileSource:
    """Plays a file into the pipeline in chunks of `chunk_ms`, paced by the clock. `samples` are
    the model's (mono at `sample_rate_hz`); `captured`, the whole file as it is, goes with each
    chunk (the same stretch of time) for the outputs."""

    def __init__(
        self,
        samples: AudioSamples,
        sample_rate_hz: int,
        chunk_ms: float = 20.0,
        captured: CapturedAudio | None = None,
    ) -> None:
        self.samples = samples
        self.sample_rate_hz = sample_rate_hz
        self.chunk = max(1, round(sample_rate_hz * chunk_ms / 1000.0))
        self.captured = captured

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz

    @property
    def output_format(self) -> tuple[int, int]:
        """(rate, channels) of what the outputs play."""
        if self.captured is None:
            return self.sample_rate_hz, 1
        return self.captured.sample_rate_hz, self.captured.channels

    def _captured_part(self, start: int, stop: int) -> CapturedAudio | None:
        if self.captured is None:
            return None
        rate = self.captured.sample_rate_hz
        first, last = start * rate // self.sample_rate_hz, stop * rate // self.sample_rate_hz
        if stop >= self.samples.shape[0]:
            last = self.captured.samples.shape[0]  # the file's last samples go with its last chunk
        return CapturedAudio(self.captured.samples[first:last], rate)

    async def run(self, emit: EmitAudio, clock: StreamClock) -> None:
        for start in range(0, self.samples.shape[0], self.chunk):
            part = self.samples[start : start + self.chunk]
            pts_ns = start * NS_PER_S // self.sample_rate_hz
            end_pts_ns = (start + part.shape[0]) * NS_PER_S // self.sample_rate_hz
            await clock.wait_for_pts(end_pts_ns)  # a chunk exists once its last sample was "captured"
            captured = self._captured_part(start, start + part.shape[0])
            await emit(AudioChunk(part, self.sample_rate_hz, clock.capture_ns(pts_ns), pts_ns, captured))


class MicSource:
    """A sounddevice input stream; `device` as sounddevice takes it (index, name or None). It
    records at the device's own rate and channels (up to two): the outputs play that, the model
    gets it mixed to mono and resampled to `sample_rate_hz` (`StreamResampler`). `open` opens the
    device without recording (a microphone that cannot open is a UserError before anything
    starts); `run` records until cancelled; `close` releases it."""

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate_hz: int = MelConfig().sample_rate_hz,
        block_ms: float = 20.0,
        queue_chunks: int = 100,
    ) -> None:
        self.device = device
        self.sample_rate_hz = sample_rate_hz
        self.block_ms = block_ms
        self.queue_chunks = queue_chunks
        self.dropped = 0
        self.output_format = (sample_rate_hz, 1)  # (rate, channels) recorded: known once open
        self._stream: Any = None
        self._queue: asyncio.Queue[AudioChunk] | None = None

    def _device_format(self) -> tuple[int, int]:
        import sounddevice as sd

        try:
            info = sd.query_devices(self.device, "input")
        except Exception as exc:
            raise UserError(
                f"microphone {self.device if self.device is not None else '(default)'}: cannot open it"
                f" ({exc}); `python -m sounddevice` lists the devices"
            ) from exc
        channels = max(1, min(int(info["max_input_channels"]), MAX_OUTPUT_CHANNELS))
        return round(float(info["default_samplerate"])), channels

    async def open(self) -> None:
        if self._stream is not None:
            return
        import sounddevice as sd

        rate, channels = self._device_format()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioChunk] = asyncio.Queue(maxsize=self.queue_chunks)
        resampler = StreamResampler(rate, self.sample_rate_hz)
        samples_seen = [0]

        def put(chunk: AudioChunk) -> None:
            try:
                queue.put_nowait(chunk)
            except asyncio.QueueFull:
                self.dropped += 1

        def callback(indata: np.ndarray[Any, Any], frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic_ns()
            latency_ns = int(float(stream.latency) * NS_PER_S)
            block_ns = now - frames * NS_PER_S // rate - latency_ns  # the block's first sample
            captured = np.array(indata, dtype=np.float32).reshape(frames, channels)
            first_pos = resampler.next_out_input_pos  # input position of the model's first sample
            model = resampler.push(captured.mean(axis=1))
            lag_ns = round((samples_seen[0] - first_pos) * NS_PER_S / rate)
            samples_seen[0] += frames
            captured_audio = CapturedAudio(captured, rate)
            pts_ns = round(first_pos * NS_PER_S / rate)
            chunk = AudioChunk(model, self.sample_rate_hz, block_ns - lag_ns, pts_ns, captured_audio)
            loop.call_soon_threadsafe(put, chunk)

        try:
            stream = sd.InputStream(
                device=self.device,
                channels=channels,
                samplerate=rate,
                blocksize=round(rate * self.block_ms / 1000.0),
                dtype="float32",
                callback=callback,
            )
        except Exception as exc:
            raise UserError(
                f"microphone {self.device if self.device is not None else '(default)'}: cannot open it"
                f" ({exc}); `python -m sounddevice` lists the devices"
            ) from exc
        self._stream, self._queue = stream, queue
        self.output_format = (rate, channels)

    async def run(self, emit: EmitAudio, clock: StreamClock) -> None:
        await self.open()
        assert self._queue is not None
        try:
            with self._stream:  # starts recording; stops and closes the device at the end
                while True:
                    await emit(await self._queue.get())
        finally:
            self._stream = None

    async def close(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
