"""The virtual microphone: the input audio, delayed by the measured video latency, played to an
output device, so an app that takes our camera and our microphone gets them in sync.

`AudioDelayLine` releases each chunk at `capture_ns + delay` (minus the output device's own
latency), on a `PacingClock` (the system's by default); the delay is what the stream's
`stablesync.realtime.pipeline.delivery.DelayFollower` applies (the policy `serve` follows too: the median
latency, moved only past the hysteresis, because every change is an audible skip or gap).
`VirtualMicSink` queues it for a sounddevice callback stream (it never waits for the device);
on Linux with `pulse_sink` set, the stream is routed into that PulseAudio sink (PULSE_SINK).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from stablesync.errors import UserError
from stablesync.realtime.local.sinks.playout import PlayingDetector, PlayoutBuffer
from stablesync.realtime.pipeline.clock import PacingClock, SystemClock
from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk


class AudioDelayLine:
    def __init__(self, clock: PacingClock | None = None) -> None:
        self.clock = clock if clock is not None else SystemClock()
        self.device_latency_ns = 0
        self.delay_ns = 0  # what the last chunk was delayed by
        self.chunks_out = 0

    async def run(
        self,
        source: Callable[[], Awaitable[AudioChunk | None]],
        delay_ns: Callable[[], int],
        write: Callable[[AudioChunk], Awaitable[None]],
    ) -> None:
        """Takes chunks from `source` until None; writes each at its capture time plus
        `delay_ns()` (read as the chunk comes up), ahead by the device's own latency."""
        while True:
            chunk = await source()
            if chunk is None:
                return
            self.delay_ns = delay_ns()
            due_ns = chunk.capture_ns + self.delay_ns - self.device_latency_ns
            wait_ns = due_ns - self.clock.monotonic_ns()
            if wait_ns > 0:
                await self.clock.sleep(wait_ns / NS_PER_S)
            await write(chunk)
            self.chunks_out += 1


@dataclass(frozen=True)
class VirtualMicConfig:
    device: str | int | None = None  # sounddevice output device; None: the default (or "pulse")
    pulse_sink: str | None = None  # route into this PulseAudio sink (Linux virtual microphone)
    sample_rate_hz: int = 16_000  # the input's (`AudioChunk.playable`)
    channels: int = 1
    latency_s: float = 0.05
    start_timeout_s: float = 3.0  # how long `open` waits for the stream to play
    queue_s: float = 2.0  # audio queued beyond this (the stream stopped playing) is dropped
    cushion_s: float = 0.04  # audio handed over this early, so a late hand-off is not a gap
    drain_timeout_s: float = 1.0  # how long `close` lets the queued audio play out


class VirtualMicSink:
    """A callback output stream fed from a `PlayoutBuffer`: `write` queues and returns at once;
        the stream's callback plays what is queued, silence when nothing is. `open` returns once
        the stream plays at its real rate, so the delay line's timing starts from a playing
        stream (a sound server can hold a new stream for seconds before it plays). Audio is handed
    over `cushion_s` ahead of when the stream needs it, so the scheduling of the writer may run
    that late without a gap."""

    def __init__(self, cfg: VirtualMicConfig = VirtualMicConfig()) -> None:
        self.cfg = cfg
        self._stream: Any = None
        self._buffer = PlayoutBuffer(
            cfg.channels,
            int(cfg.queue_s * cfg.sample_rate_hz),
            cushion_frames=int(cfg.cushion_s * cfg.sample_rate_hz),
        )
        self._detector = PlayingDetector(cfg.sample_rate_hz)
        self.underflows = 0  # callbacks the audio API reported late
        self.started_playing = False

    @property
    def samples_written(self) -> int:
        return self._buffer.frames_written

    @property
    def samples_dropped(self) -> int:
        return self._buffer.frames_dropped

    @property
    def gaps(self) -> int:
        """Times the stream ran dry mid-stream: each an audible gap, the audio after it later."""
        return self._buffer.gaps

    def _callback(self, out: Any, frames: int, _time: Any, status: Any) -> None:
        self._detector.callback(frames)
        if status.output_underflow:
            self.underflows += 1
        self._buffer.fill(out)

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
                callback=self._callback,
            )
            stream.start()
        except Exception as exc:
            raise UserError(
                f"virtual microphone output {device if device is not None else '(default)'}:"
                f" cannot open it ({exc});"
                " Linux: a PulseAudio/PipeWire server; macOS: BlackHole; Windows: VB-Cable"
            ) from exc
        self._stream = stream
        self.started_playing = self._detector.playing.wait(self.cfg.start_timeout_s)

    async def open(self) -> float:
        """Opens the output and waits (up to `start_timeout_s`) until it plays; returns the
        latency to write ahead by, in seconds: the device's own plus the cushion (see
        `PlayoutBuffer`)."""
        await asyncio.get_running_loop().run_in_executor(None, self._open)
        return float(self._stream.latency) + self.cfg.cushion_s

    async def write(self, chunk: AudioChunk) -> None:
        """Queues the chunk's playable audio (the input's rate and channels, converted to the
        output's when they differ) for the stream's next callback; never waits for the device."""
        self._buffer.write(chunk.playable().converted(self.cfg.sample_rate_hz, self.cfg.channels))

    def _close(self) -> None:
        if self._stream is None:
            return
        self._buffer.wait_empty(self.cfg.drain_timeout_s)
        self._stream.stop()
        self._stream.close()
        self._stream = None

    async def close(self) -> None:
        """Lets the queued audio play out (up to `drain_timeout_s`), then closes the stream."""
        await asyncio.get_running_loop().run_in_executor(None, self._close)
