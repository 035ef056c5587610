"""A session's worker thread: one thread that owns a part that is not thread-safe (a face
mesh: the tracker's, the compositor's) and runs every call to it, closing included.

Closing must always finish: the part's own close runs on its thread with a time limit; one
that hangs is logged with the limit, one that raises with its traceback, and the thread is
shut down either way.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class Worker:
    def __init__(self, name: str, logger: logging.Logger) -> None:
        self.name = name
        self._logger = logger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stablesync-{name}")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """`fn(*args)` on the worker's thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def close(self, close_part: Callable[[], None], timeout_s: float) -> None:
        """Runs `close_part` on the worker's thread (within `timeout_s`), then ends the thread."""
        try:
            await asyncio.wait_for(self.run(close_part), timeout_s)
        except TimeoutError:
            self._logger.warning("%s: its part did not close within %.1f s", self.name, timeout_s)
        except Exception:  # any failure of a third-party close: logged, never raised from here
            self._logger.exception("%s: its part failed to close", self.name)
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
