"""Audio sources: the microphone (sounddevice) and an audio file paced at real time (or fast)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from realtime.clock import StreamClock
from realtime.frames import NS_PER_S, AudioChunk, AudioSamples
from stablesync.audio import MelConfig
from stablesync.errors import UserError

EmitAudio = Callable[[AudioChunk], Awaitable[None]]


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


class AudioFileSource:
    """Plays a file into the pipeline in chunks of `chunk_ms`, paced by the clock."""

    def __init__(self, samples: AudioSamples, sample_rate_hz: int, chunk_ms: float = 20.0) -> None:
        self.samples = samples
        self.sample_rate_hz = sample_rate_hz
        self.chunk = max(1, round(sample_rate_hz * chunk_ms / 1000.0))

    @property
    def duration_s(self) -> float:
        return self.samples.shape[0] / self.sample_rate_hz

    async def run(self, emit: EmitAudio, clock: StreamClock) -> None:
        for start in range(0, self.samples.shape[0], self.chunk):
            part = self.samples[start : start + self.chunk]
            pts_ns = start * NS_PER_S // self.sample_rate_hz
            end_pts_ns = (start + part.shape[0]) * NS_PER_S // self.sample_rate_hz
            await clock.wait_for_pts(end_pts_ns)  # a chunk exists once its last sample was "captured"
            await emit(AudioChunk(part, self.sample_rate_hz, clock.capture_ns(pts_ns), pts_ns))


class MicSource:
    """A sounddevice input stream; `device` as sounddevice takes it (index, name or None).
    `open` opens the device without recording (a microphone that cannot open is a UserError
    before anything starts); `run` records until cancelled; `close` releases it."""

    def __init__(
        self,
        device: int | str | None = None,
        sample_rate_hz: int = MelConfig().sample_rate_hz,
        block_ms: float = 20.0,
        queue_chunks: int = 100,
    ) -> None:
        self.device = device
        self.sample_rate_hz = sample_rate_hz
        self.block = round(sample_rate_hz * block_ms / 1000.0)
        self.queue_chunks = queue_chunks
        self.dropped = 0
        self._stream: Any = None
        self._queue: asyncio.Queue[AudioChunk] | None = None

    async def open(self) -> None:
        if self._stream is not None:
            return
        import sounddevice as sd

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AudioChunk] = asyncio.Queue(maxsize=self.queue_chunks)
        samples_seen = [0]

        def put(chunk: AudioChunk) -> None:
            try:
                queue.put_nowait(chunk)
            except asyncio.QueueFull:
                self.dropped += 1

        def callback(indata: np.ndarray[Any, Any], frames: int, time_info: Any, status: Any) -> None:
            now = time.monotonic_ns()
            latency_ns = int(float(stream.latency) * NS_PER_S)
            capture_ns = now - frames * NS_PER_S // self.sample_rate_hz - latency_ns
            pts_ns = samples_seen[0] * NS_PER_S // self.sample_rate_hz
            samples_seen[0] += frames
            chunk = AudioChunk(
                indata[:, 0].astype(np.float32).copy(), self.sample_rate_hz, capture_ns, pts_ns
            )
            loop.call_soon_threadsafe(put, chunk)

        try:
            stream = sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=self.sample_rate_hz,
                blocksize=self.block,
                dtype="float32",
                callback=callback,
            )
        except Exception as exc:
            raise UserError(
                f"microphone {self.device if self.device is not None else '(default)'}: cannot open it"
                f" ({exc}); `python -m sounddevice` lists the devices"
            ) from exc
        self._stream, self._queue = stream, queue

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
