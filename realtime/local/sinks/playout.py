"""What an output stream's callback plays: a bounded FIFO of samples the writer fills without
waiting, and the check that the stream really plays before anything is timed against it.

The callback runs on the audio API's own thread and must never wait for the writer: it takes
what is queued and fills the rest of its buffer with silence. The writer never waits for the
callback: when more than `capacity` frames are queued (the stream stopped consuming), the
oldest are dropped and counted.

A writer that hands each block over just in time leaves the callback nothing to take whenever
it runs a little late, and every such moment is an audible gap. So a write that finds the
stream starved (at the start, or after the callback has played silence) first queues
`cushion_frames` of silence: its audio then plays that much later, and a writer that hands
blocks over `cushion_frames` early (the sink adds the cushion to the latency it reports) keeps
that much queued, so a hand-off late by less than the cushion is not heard. Each restart after
the stream had played audio is counted in `gaps`.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np
from numpy.typing import NDArray

Samples = NDArray[np.float32]  # (frames, channels)


class PlayoutBuffer:
    def __init__(self, channels: int, capacity_frames: int, cushion_frames: int = 0) -> None:
        self.channels = channels
        self.capacity_frames = capacity_frames
        self.cushion_frames = cushion_frames
        self._lock = threading.Lock()
        self._blocks: deque[Samples] = deque()
        self._queued_frames = 0
        self._empty = threading.Event()
        self._empty.set()
        self._starved = True  # the callback has played silence since the last write
        self._cushion_queued = 0  # silence at the head of the queue (a starved write puts it there)
        self.frames_written = 0
        self.frames_played = 0  # of the written ones; silence is not counted
        self.frames_dropped = 0
        self.gaps = 0  # times the stream ran dry after it had played audio

    @property
    def queued_frames(self) -> int:
        return self._queued_frames

    def write(self, samples: Samples) -> None:
        """Queues (frames, channels) float32 samples; never waits."""
        block = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1, self.channels)
        with self._lock:
            if self._starved:
                self._starved = False
                if self.frames_played > 0:
                    self.gaps += 1
                if self.cushion_frames > 0:
                    self._blocks.append(np.zeros((self.cushion_frames, self.channels), np.float32))
                    self._queued_frames += self.cushion_frames
                    self._cushion_queued = self.cushion_frames  # the queue was empty
            self._blocks.append(block)
            self._queued_frames += block.shape[0]
            self.frames_written += block.shape[0]
            self._empty.clear()
            while self._queued_frames > self.capacity_frames:
                over = self._queued_frames - self.capacity_frames
                oldest = self._blocks[0]
                if oldest.shape[0] <= over:
                    self._blocks.popleft()
                    dropped = oldest.shape[0]
                else:
                    self._blocks[0] = oldest[over:]
                    dropped = over
                self._queued_frames -= dropped
                cushion = min(dropped, self._cushion_queued)
                self._cushion_queued -= cushion
                self.frames_dropped += dropped - cushion

    def fill(self, out: Samples) -> None:
        """Fills `out` (frames, channels) with the oldest queued samples, then silence."""
        wanted = out.shape[0]
        done = 0
        with self._lock:
            while done < wanted and self._blocks:
                block = self._blocks[0]
                take = min(wanted - done, block.shape[0])
                out[done : done + take] = block[:take]
                if take == block.shape[0]:
                    self._blocks.popleft()
                else:
                    self._blocks[0] = block[take:]
                done += take
            self._queued_frames -= done
            cushion = min(done, self._cushion_queued)
            self._cushion_queued -= cushion
            self.frames_played += done - cushion
            if not self._blocks:
                self._empty.set()
            if done < wanted:
                self._starved = True
        out[done:] = 0.0

    def wait_empty(self, timeout_s: float) -> bool:
        """Waits until everything written has been handed to the stream (or `timeout_s`)."""
        return self._empty.wait(timeout_s)


class PlayingDetector:
    """Fed the time of each callback: says when the stream consumes at its real rate.

    A started stream first asks for a few buffers at once (pre-fill), and a sound server may
    then hold it for a while before playing it: PulseAudio's null sink, the Linux virtual
    microphone, held it 0.9-1.9 s here (it wakes on its own schedule, up to 2 s apart). Audio
    queued meanwhile would come out that much later than its due time. So the stream counts as
    playing once, over its last `window_calls` callbacks, it took at most twice as much audio
    as the time they spanned (pre-fill takes many buffers at once; a server that asks in
    bursts of two still counts)."""

    def __init__(self, sample_rate_hz: int, window_calls: int = 4) -> None:
        self.sample_rate_hz = sample_rate_hz
        self._calls: deque[tuple[int, int]] = deque(maxlen=window_calls)  # (time ns, frames)
        self.playing = threading.Event()

    def callback(self, frames: int, now_ns: int | None = None) -> None:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        self._calls.append((now_ns, frames))
        if len(self._calls) < (self._calls.maxlen or 2):
            return
        span_ns = now_ns - self._calls[0][0]
        taken_ns = sum(f for _, f in list(self._calls)[1:]) * 1_000_000_000 // self.sample_rate_hz
        if span_ns > 0 and 2 * span_ns >= taken_ns:
            self.playing.set()
