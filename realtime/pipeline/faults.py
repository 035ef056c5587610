"""Live faults, logged: once with the traceback, then at most every `interval_s` with a count.

A live fault (a frame the tracker, the engine or the renderer fails on) never stops a stream: the
frame passes through and the stream goes on. It must still be seen, with where it came from:
the first fault of each kind (stage and exception type) is logged at WARNING with its
traceback; the same kind again within `interval_s` is only counted, and the next log line says
how many were not shown. A fault that repeats every frame gives one line per interval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stablesync.realtime.pipeline.clock import Clock
from stablesync.realtime.pipeline.frames import NS_PER_S


@dataclass
class _Kind:
    last_logged_ns: int
    unlogged: int = 0


class FaultLog:
    """One stream's fault log (`report` from any one thread at a time)."""

    def __init__(self, logger: logging.Logger, clock: Clock, interval_s: float = 10.0) -> None:
        self.logger = logger
        self.clock = clock
        self.interval_ns = int(interval_s * NS_PER_S)
        self._kinds: dict[tuple[str, str], _Kind] = {}

    def report(self, stage: str, exc: BaseException) -> None:
        key = (stage, type(exc).__name__)
        now = self.clock.monotonic_ns()
        kind = self._kinds.get(key)
        if kind is None:
            self._kinds[key] = _Kind(last_logged_ns=now)
            self.logger.warning(
                "%s failed (the frame passes through): %s: %s", stage, key[1], exc, exc_info=exc
            )
            return
        if now - kind.last_logged_ns < self.interval_ns:
            kind.unlogged += 1
            return
        self.logger.warning(
            "%s failed again: %s: %s (%d more since the last line)", stage, key[1], exc, kind.unlogged
        )
        kind.last_logged_ns, kind.unlogged = now, 0
