"""The server's thread pool for the blocking work its event loop hands off: aiortc's encoders
(every sender encodes on the loop's default executor, one frame at a time), releasing freed
memory after a session closes, opening a profile's engine.

The pool is the loop's default executor while the server runs, sized for that work and with all
its threads started at once, so the server's thread count does not depend on how many sessions
happened to overlap: asyncio's own default pool starts a thread whenever none is idle and keeps
it, so after a busy spell it held more idle threads than after one session.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

THREAD_PREFIX = "stablesync-serve"
THREADS_PER_SESSION = 2  # a session's video and audio senders each encode one frame at a time
SERVER_THREADS = 1  # releasing freed memory, opening a profile's engine
ENCODES_PER_CORE = 4  # encodes in flight per core beyond which more threads only queue on the CPU
START_TIMEOUT_S = 10.0


def usable_cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    return max(1, len(os.sched_getaffinity(0)))


def pool_threads(max_sessions: int, cores: int | None = None) -> int:
    """Threads for `max_sessions` sessions: one per sender, so no sender waits for another's
    encode, but at most `ENCODES_PER_CORE` encodes per core (`cores`: this process's, by
    default): an encode holds a core for its whole run (libvpx and opus release the GIL), so a
    thread beyond that would only wait for a core while costing its stack."""
    encoders = min(THREADS_PER_SESSION * max_sessions, ENCODES_PER_CORE * (cores or usable_cores()))
    return encoders + SERVER_THREADS


def started_pool(threads: int) -> ThreadPoolExecutor:
    """A pool of `threads` threads, every one of them running when this returns (each first
    job waits at a barrier until all have been started, so none can be reused for the next)."""
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=THREAD_PREFIX)
    all_started = threading.Barrier(threads + 1, timeout=START_TIMEOUT_S)
    for _ in range(threads):
        pool.submit(all_started.wait)
    try:
        all_started.wait()
    except threading.BrokenBarrierError:
        pool.shutdown(wait=False, cancel_futures=True)
        late = f"the server's {threads} pool threads did not start in {START_TIMEOUT_S:g} s"
        raise RuntimeError(late) from None
    return pool


@contextlib.contextmanager
def server_executor(loop: asyncio.AbstractEventLoop, max_sessions: int) -> Iterator[ThreadPoolExecutor]:
    """The loop's default executor while the block runs: `pool_threads(max_sessions)` threads,
    started now. At exit it takes no more work, drops what is queued (its threads end after the
    job each is running) and the loop gets a pool of the kind asyncio makes itself, started
    lazily, for whatever runs on the loop after the server."""
    pool = started_pool(pool_threads(max_sessions))
    loop.set_default_executor(pool)
    try:
        yield pool
    finally:
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))
        pool.shutdown(wait=False, cancel_futures=True)
