"""Sessions of `stablesync serve` leave no threads behind (issue 21): real aiortc peers on
loopback, the shipped engine, the real tracker and renderer; after each session has closed, the
process's OS threads are back to their level after the first one.

The automatic garbage collector is off while the sessions run, so what counts is what a
session's close and the server's own collection after it let go of, not what an automatic
collection happened to free later (in a long soak, threads held by closed sessions' leftovers
piled up between collections: 12 -> 75 in 6 minutes).

And the blocking work the event loop hands off (aiortc's encoders) runs on the server's own
pool, every thread of it started with the server and none added however many jobs come at once,
so the server's thread count does not grow with how many sessions overlapped.
"""

from __future__ import annotations

import asyncio
import collections
import re
import threading
import time
from pathlib import Path

import pytest

from stablesync.benchmarks.webrtc_sessions import _clip
from stablesync.realtime.pipeline.session import SessionConfig
from stablesync.realtime.webrtc import PassthroughFactory, ServeConfig, running_server
from stablesync.realtime.webrtc.client import run_client
from stablesync.realtime.webrtc.executor import THREAD_PREFIX, pool_threads
from stablesync.realtime.webrtc.lipsync import LipSyncFactory
from tests.no_gc import no_cyclic_gc  # noqa: F401 (the fixture, by name)
from tests.shipped_engine import shipped_cpu_engine

SESSIONS = 3
SEND_S = 2.0
CLOSE_TIMEOUT_S = 15.0
SETTLE_TIMEOUT_S = 10.0  # a closed peer's last threads (a decoder's, a pool's) end within this
POOL_END_TIMEOUT_S = 5.0


def os_threads() -> int:
    return len(list(Path("/proc/self/task").iterdir()))


def thread_kinds() -> collections.Counter[str]:
    """Python threads by name, numbering dropped ("asyncio_3" -> "asyncio"): a pool may grow to
    its bound, but a kind of thread that was not there before is a session's."""
    return collections.Counter(re.sub(r"[_-]\d+$", "", t.name) for t in threading.enumerate())


def native_threads() -> int:
    """OS threads Python does not know of: codecs', swscale's and filter graphs' pools, ..."""
    return os_threads() - threading.active_count()


async def _settled(baseline: int, kinds: collections.Counter[str]) -> int:
    """The native thread count once it is back to `baseline` and no Python thread of a kind
    not in `kinds` is left (a closed session's workers end just after its close), or after
    `SETTLE_TIMEOUT_S`."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if native_threads() <= baseline and set(thread_kinds()) <= set(kinds):
            break
        await asyncio.sleep(0.2)
    return native_threads()


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
@pytest.mark.usefixtures("no_cyclic_gc")
async def test_closed_sessions_leave_no_threads() -> None:
    clip = _clip()
    factory = LipSyncFactory(shipped_cpu_engine(), SessionConfig())
    async with running_server(ServeConfig(port=0), factory) as server:
        # the first session makes what the server keeps (pools, codecs' tables, mediapipe)
        first = await run_client(server.url, clip, SEND_S, settle_s=0.5)
        assert first.error is None, first.error
        assert await server.registry.wait_empty(CLOSE_TIMEOUT_S), "the first session did not close"
        await asyncio.sleep(1.0)  # its peer's last tasks end
        baseline = native_threads()
        kinds = thread_kinds()
        counts = []
        for _ in range(SESSIONS):
            result = await run_client(server.url, clip, SEND_S, settle_s=0.5)
            assert result.error is None, result.error
            assert result.stats and result.stats[-1]["modes"].get("lipsync", 0) > 0, result.stats[-1:]
            assert await server.registry.wait_empty(CLOSE_TIMEOUT_S), "a session did not close"
            counts.append(await _settled(baseline, kinds))
            assert set(thread_kinds()) <= set(kinds), (thread_kinds(), kinds)
    assert max(counts) <= baseline, (baseline, counts)


def pool_threads_running() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


async def test_the_loops_blocking_work_runs_on_the_servers_started_pool() -> None:
    loop = asyncio.get_running_loop()
    bound = pool_threads(2)
    async with running_server(ServeConfig(port=0, max_sessions=2), PassthroughFactory()):
        started = {t.name for t in pool_threads_running()}
        assert len(started) == bound, (started, bound)  # all of them, before any work
        # more jobs at once than threads: they run on those threads, and no other is started
        release = threading.Event()

        def job() -> str:
            release.wait(POOL_END_TIMEOUT_S)
            return threading.current_thread().name

        jobs = [loop.run_in_executor(None, job) for _ in range(bound + 3)]
        release.set()
        ran_on = set(await asyncio.gather(*jobs))
        assert ran_on <= started, (ran_on, started)
        assert {t.name for t in pool_threads_running()} == started
    for thread in pool_threads_running():
        thread.join(POOL_END_TIMEOUT_S)
    assert not pool_threads_running(), "the server's pool outlived it"
    after = await loop.run_in_executor(None, lambda: threading.current_thread().name)
    assert not after.startswith(THREAD_PREFIX), after  # the loop still runs work after the server


def test_the_pool_has_one_thread_per_sender_up_to_four_encodes_per_core() -> None:
    assert pool_threads(2, cores=2) == 2 * 2 + 1  # every sender its own thread
    assert pool_threads(64, cores=2) == 4 * 2 + 1  # not 129: 64 sessions' encodes share 2 cores
    assert pool_threads(64, cores=64) == 2 * 64 + 1
    assert pool_threads(3) >= 2  # this machine's cores by default, never below one encoder
