"""Clocks. `Clock` is what the parts that measure time take (the batcher, the session), so a
test can give them a clock it moves itself; `PacingClock` also sleeps (the WebRTC tracks, which
release media at set times); `SystemClock` is `time.monotonic_ns` and `asyncio.sleep`.

`StreamClock` is the shared time line of one run: every source stamps its frames from the
same start.

`capture_ns` of a paced file source is `start_ns + pts_ns`: the moment it releases the frame,
as if a device had captured it then. In fast mode (`paced=False`) sources do not wait, and
the same formula gives a synthetic, consistent time line.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from stablesync.realtime.pipeline.frames import NS_PER_S


class Clock(Protocol):
    def monotonic_ns(self) -> int: ...


class PacingClock(Clock, Protocol):
    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The process's monotonic clock."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class StreamClock:
    paced: bool = True
    start_ns: int = field(default_factory=time.monotonic_ns)

    def capture_ns(self, pts_ns: int) -> int:
        return self.start_ns + pts_ns

    async def wait_for_pts(self, pts_ns: int) -> None:
        """Paced: sleeps until the stream position `pts_ns` is due. Fast: yields once."""
        if not self.paced:
            await asyncio.sleep(0)
            return
        delay_ns = self.start_ns + pts_ns - time.monotonic_ns()
        if delay_ns > 0:
            await asyncio.sleep(delay_ns / NS_PER_S)
