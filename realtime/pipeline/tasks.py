"""Cancelling a part's asyncio tasks within a time limit: the one policy every part follows.

A task is cancelled, then waited for up to `timeout_s`. A cancellation can be lost: on Python
3.11, `asyncio.wait_for` returns its inner result instead of raising when the cancel and the
inner future's completion fall in the same loop iteration (CPython gh-86296), and the task goes
on to its next `await`. So a task still running after `retry_s` is cancelled again, until it
ends or the limit passes; what is still running then is logged, one line per task, naming it.
(A stage whose lost cancel left it waiting on its input for good was collected with its session
and logged by asyncio as "Task was destroyed but it is pending!", seen in the 30-minute soaks.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

RETRY_S = 0.05


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    timeout_s: float,
    logger: logging.Logger,
    owner: str,
    retry_s: float = RETRY_S,
) -> set[asyncio.Task[Any]]:
    """Cancels `tasks` and waits up to `timeout_s` for them to end, cancelling again every
    `retry_s` those still running. Returns (and logs as `owner`'s) the tasks still running."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline_s = loop.time() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        left_s = deadline_s - loop.time()
        if left_s <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(retry_s, left_s))
    for task in sorted(pending, key=lambda t: t.get_name()):
        logger.warning("%s: task %s still running %.1f s after its cancel", owner, task.get_name(), timeout_s)
    return pending
