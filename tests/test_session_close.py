"""Closing a session always finishes, and says what went wrong: a part (the tracker's or the
compositor's face mesh) whose close raises is logged with its traceback, one that hangs is
logged with the time limit, and the worker thread is let go either way
(`stablesync.realtime.pipeline.worker`)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from stablesync.export.engine import Engine
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from stablesync.realtime.pipeline.tracking import FaceFollower
from stablesync.realtime.pipeline.worker import Worker
from tests.shipped_engine import shipped_cpu_engine

log = logging.getLogger("test-worker")


async def test_a_close_that_raises_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker("w-raise", log)

    def close_part() -> None:
        raise RuntimeError("the mesh is gone")

    with caplog.at_level(logging.WARNING, logger="test-worker"):
        await worker.close(close_part, timeout_s=5.0)
    (record,) = caplog.records
    assert "w-raise" in record.getMessage() and "failed to close" in record.getMessage()
    assert record.exc_info is not None and "the mesh is gone" in str(record.exc_info[1])


async def test_a_close_that_hangs_is_logged_with_its_limit(caplog: pytest.LogCaptureFixture) -> None:
    worker = Worker("w-hang", log)
    release = threading.Event()

    def close_part() -> None:
        release.wait(30.0)

    try:
        with caplog.at_level(logging.WARNING, logger="test-worker"):
            await worker.close(close_part, timeout_s=0.05)
    finally:
        release.set()  # lets the stuck thread end
    (record,) = caplog.records
    assert record.getMessage() == "w-hang: its part did not close within 0.1 s"


async def test_a_session_logs_its_tracker_failing_to_close(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    engine: Engine = shipped_cpu_engine()
    batcher = InferenceBatcher(engine)
    session = LipSyncSession(batcher, SessionConfig(), name="closing")
    await session.start()

    def broken_close(self: FaceFollower) -> None:
        raise RuntimeError("tracker close failed")

    monkeypatch.setattr(FaceFollower, "close", broken_close)
    try:
        with caplog.at_level(logging.WARNING, logger="stablesync.realtime.pipeline.session"):
            await session.close(2.0)  # finishes, the compositor closed after the tracker
    finally:
        await batcher.close(2.0)
    messages = [r.getMessage() for r in caplog.records if r.exc_info is not None]
    assert messages == ["closing-track: its part failed to close"]


async def test_a_close_behind_a_call_past_the_limit_still_runs_and_queued_calls_are_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The tracker's thread busy with a slow call when the session closes: the close waits for
    it past the limit (logged), then runs; a call queued behind the slow one never runs. A
    close dropped here left the face mesh and its threads open for good."""
    worker = Worker("w-busy", log)
    busy, release, closed = threading.Event(), threading.Event(), threading.Event()
    ran: list[str] = []

    def slow_call() -> None:
        busy.set()
        release.wait(30.0)
        ran.append("slow")

    slow = asyncio.ensure_future(worker.run(slow_call))
    queued = asyncio.ensure_future(worker.run(ran.append, "queued"))
    assert await asyncio.to_thread(busy.wait, 30.0)
    with caplog.at_level(logging.WARNING, logger="test-worker"):
        await worker.close(closed.set, timeout_s=0.05)
    assert [r.getMessage() for r in caplog.records] == ["w-busy: its part did not close within 0.1 s"]
    assert not closed.is_set()
    release.set()
    await slow
    assert await asyncio.to_thread(closed.wait, 30.0), "the close was dropped: the part stays open"
    assert ran == ["slow"] and queued.cancelled()


async def test_a_session_whose_close_is_cut_off_still_closes_its_tracker_and_compositor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """serve gives a peer's pipeline one second to close; a session close cut off there (here
    after 0.1 s, while the tracker's mesh takes 0.5 s) must still close both face meshes: cut
    off before the compositor's, that mesh and its threads stayed open for good (two mediapipe
    threads left after a 30-minute soak)."""
    from stablesync.realtime.pipeline.compositing import Compositor

    engine: Engine = shipped_cpu_engine()
    batcher = InferenceBatcher(engine)
    session = LipSyncSession(batcher, SessionConfig(), name="cut-off")
    await session.start()
    closed: list[str] = []
    tracker_close, compositor_close = FaceFollower.close, Compositor.close

    def closing_tracker(self: FaceFollower) -> None:
        time.sleep(0.5)  # a mesh slow to close, as under load
        tracker_close(self)
        closed.append("tracker")

    def closing_compositor(self: Compositor) -> None:
        compositor_close(self)
        closed.append("compositor")

    monkeypatch.setattr(FaceFollower, "close", closing_tracker)
    monkeypatch.setattr(Compositor, "close", closing_compositor)
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(session.close(2.0), 0.1)
        for _ in range(200):
            if len(closed) == 2:
                break
            await asyncio.sleep(0.05)
    finally:
        await batcher.close(2.0)
    assert sorted(closed) == ["compositor", "tracker"]
