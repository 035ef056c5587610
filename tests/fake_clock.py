"""A monotonic clock that moves only when a test tells it to (`stablesync.realtime.pipeline.clock.Clock`),
so the deadline policy, the batcher's estimate and the tracks' pacing can be tested without timing."""

from __future__ import annotations

import threading
import time

from stablesync.realtime.pipeline.frames import NS_PER_MS, NS_PER_S


class FakeClock:
    def __init__(self) -> None:
        self.now_ns = time.monotonic_ns()
        self._lock = threading.Lock()  # the batcher's inference thread moves it too

    def monotonic_ns(self) -> int:
        with self._lock:
            return self.now_ns

    def advance_ms(self, ms: float) -> None:
        with self._lock:
            self.now_ns += int(ms * NS_PER_MS)

    def set_ns(self, now_ns: int) -> None:
        with self._lock:
            self.now_ns = max(self.now_ns, now_ns)

    async def sleep(self, seconds: float) -> None:
        """What a paced track awaits: the time passes at once."""
        self.advance_ms(max(0.0, seconds) * NS_PER_S / NS_PER_MS)
