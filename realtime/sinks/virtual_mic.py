"""The virtual microphone: the input audio, delayed by the measured video latency, played to an
output device, so an app that takes our camera and our microphone gets them in sync.

`AudioDelayLine` releases each chunk at `capture_ns + delay` (minus the output device's own
latency). The delay follows the session's recent median glass-to-glass latency with
hysteresis (it changes only when the target moved more than `hysteresis_ms`), because every
change is an audible skip or gap. `VirtualMicSink` writes to a sounddevice output stream; on
Linux with `pulse_sink` set, the stream is routed into that PulseAudio sink (PULSE_SINK).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from realtime.frames import NS_PER_MS, NS_PER_S, AudioChunk, AudioSamples
from stablesync.errors import UserError


@dataclass(frozen=True)
class DelayConfig:
    hysteresis_ms: float = 25.0
    max_delay_ms: float = 1500.0


class AudioDelayLine:
    def __init__(self, cfg: DelayConfig = DelayConfig()) -> None:
        self.cfg = cfg
        self.applied_delay_ns = 0
        self.device_latency_ns = 0
        self.chunks_out = 0

    def update(self, target_ns: int) -> int:
        target_ns = min(max(target_ns, 0), int(self.cfg.max_delay_ms * NS_PER_MS))
        if abs(target_ns - self.applied_delay_ns) > self.cfg.hysteresis_ms * NS_PER_MS:
            self.applied_delay_ns = target_ns
        return self.applied_delay_ns

    async def run(
        self,
        source: Callable[[], Awaitable[AudioChunk | None]],
        target_delay_ns: Callable[[], int],
        write: Callable[[AudioChunk], Awaitable[None]],
    ) -> None:
        while True:
            chunk = await source()
            if chunk is None:
                return
            delay = self.update(target_delay_ns())
            due_ns = chunk.capture_ns + delay - self.device_latency_ns
            wait_ns = due_ns - time.monotonic_ns()
            if wait_ns > 0:
                await asyncio.sleep(wait_ns / NS_PER_S)
            await write(chunk)
            self.chunks_out += 1


@dataclass(frozen=True)
class VirtualMicConfig:
    device: str | int | None = None  # sounddevice output device; None: the default (or "pulse")
    pulse_sink: str | None = None  # route into this PulseAudio sink (Linux virtual microphone)
    sample_rate_hz: int = 16_000  # the input's (`AudioChunk.playable`)
    channels: int = 1
    latency_s: float = 0.05


class VirtualMicSink:
    def __init__(self, cfg: VirtualMicConfig = VirtualMicConfig()) -> None:
        self.cfg = cfg
        self._stream: Any = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-vmic")
        self.samples_written = 0

    def _open(self) -> None:
        import sounddevice as sd

        device = self.cfg.device
        if self.cfg.pulse_sink is not None:
            os.environ["PULSE_SINK"] = self.cfg.pulse_sink  # read by the ALSA pulse plugin on open
            device = device if device is not None else "pulse"
        try:
            stream = sd.OutputStream(
                device=device,
                channels=self.cfg.channels,
                samplerate=self.cfg.sample_rate_hz,
                dtype="float32",
                latency=self.cfg.latency_s,
            )
            stream.start()
        except Exception as exc:
            raise UserError(
                f"virtual microphone output {device if device is not None else '(default)'}:"
                f" cannot open it ({exc});"
                " Linux: a PulseAudio/PipeWire server; macOS: BlackHole; Windows: VB-Cable"
            ) from exc
        self._stream = stream

    async def open(self) -> float:
        """Opens the output; returns the device's output latency in seconds."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open)
        return float(self._stream.latency)

    def _write(self, samples: AudioSamples) -> None:
        self._stream.write(np.ascontiguousarray(samples, dtype=np.float32))
        self.samples_written += int(samples.shape[0])

    async def write(self, chunk: AudioChunk) -> None:
        """Plays the chunk's playable audio (the input's rate and channels), converted to the
        output's when they differ."""
        samples = chunk.playable().converted(self.cfg.sample_rate_hz, self.cfg.channels)
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, samples)

    async def close(self) -> None:
        def _close() -> None:
            if self._stream is not None:
                self._stream.stop()
                self._stream.close()
                self._stream = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)
