"""`cancel_and_wait`: a cancellation a task loses is requested again; a task that outlives the
limit is logged by name. Real asyncio tasks, real cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from stablesync.realtime.pipeline.tasks import cancel_and_wait

LOG = logging.getLogger("test-tasks")


async def _loses_cancels(times: int, never: asyncio.Event) -> None:
    """What Python 3.11's `asyncio.wait_for` does when the cancel and its inner result coincide,
    `times` times over: the CancelledError never reaches the caller, which waits on."""
    for _ in range(times):
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
    await never.wait()


async def test_a_lost_cancel_is_requested_again(caplog: pytest.LogCaptureFixture) -> None:
    never = asyncio.Event()
    task = asyncio.create_task(_loses_cancels(2, never), name="finish")
    await asyncio.sleep(0)
    task.cancel()  # one cancel, as the parts did before: the task loses it and waits on
    _, pending = await asyncio.wait([task], timeout=0.1)
    assert pending == {task}  # the helper's first cancel is lost as well: only its retry ends it
    with caplog.at_level(logging.WARNING, logger="test-tasks"):
        pending = await cancel_and_wait([task], 2.0, LOG, "session s1", retry_s=0.02)
    assert pending == set() and task.cancelled()
    assert caplog.records == []


async def test_a_task_that_outlives_the_limit_is_logged_by_name(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="audio")
    done_quickly = asyncio.create_task(asyncio.sleep(3600), name="track")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="test-tasks"):
        pending = await cancel_and_wait([task, done_quickly], 0.1, LOG, "session s2", retry_s=0.02)
    assert pending == {task} and done_quickly.cancelled()
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["session s2: task audio still running 0.1 s after its cancel"]
    release.set()
    await asyncio.wait_for(task, 1.0)


async def test_nothing_to_cancel_returns_at_once() -> None:
    finished = asyncio.create_task(asyncio.sleep(0), name="done")
    await finished
    assert await cancel_and_wait([finished], 5.0, LOG, "session s3") == set()
    assert await cancel_and_wait([], 5.0, LOG, "session s3") == set()
