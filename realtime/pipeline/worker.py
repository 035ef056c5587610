"""A session's worker thread: one thread that owns a part that is not thread-safe (a face
mesh: the tracker's, the compositor's) and runs every call to it, closing included.

Closing must always finish: the part's own close runs on its thread with a time limit; one
that hangs is logged with the limit, one that raises with its traceback, and the thread is
shut down either way. Calls still queued are dropped, but the close itself always runs: when the
thread is busy with a call past the limit, the close waits behind it and runs once it returns
(dropping the close left the part open for good: a face mesh and its threads, found in a
30-minute soak of `serve`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Worker:
    def __init__(self, name: str, logger: logging.Logger) -> None:
        self.name = name
        self._logger = logger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stablesync-{name}")
        self._queued: set[Future[Any]] = set()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)` on the worker's thread."""
        job: Future[T] = self._executor.submit(functools.partial(fn, *args, **kwargs))
        self._queued.add(job)
        job.add_done_callback(self._queued.discard)
        return await asyncio.wrap_future(job)

    async def close(self, close_part: Callable[[], None], timeout_s: float) -> None:
        """Drops the calls still queued, runs `close_part` on the worker's thread (waiting up to
        `timeout_s` for it; past that it still runs, after the call in progress), then lets the
        thread end once it has."""
        for job in list(self._queued):
            job.cancel()  # only those not started: a running call finishes
        closing = self._executor.submit(close_part)
        self._executor.shutdown(wait=False)  # takes no more work; the close stays queued
        try:
            await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(closing)), timeout_s)
        except TimeoutError:
            self._logger.warning("%s: its part did not close within %.1f s", self.name, timeout_s)
            closing.add_done_callback(self._log_late_failure)
        except Exception:  # any failure of a third-party close: logged, never raised from here
            self._logger.exception("%s: its part failed to close", self.name)

    def _log_late_failure(self, closing: Future[None]) -> None:
        """A close that ran past its limit and then failed: logged with its traceback."""
        error = None if closing.cancelled() else closing.exception()
        if error is not None:
            self._logger.error("%s: its part failed to close", self.name, exc_info=error)
