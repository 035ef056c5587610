"""The live sessions: a bounded set, each removed by itself when it closes."""

from __future__ import annotations

import asyncio
import collections
import ctypes
import logging
import secrets
import sys
from typing import Any

from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.peer import PeerSession
from stablesync.realtime.webrtc.profiles import Lease, ProfilePipelines

log = logging.getLogger(__name__)
FINISHED_KEPT = 1000  # final stats of closed sessions kept for `serve --stats-json`
TRIM_TIMEOUT_S = 1.0


class SessionRegistry:
    def __init__(self, config: ServeConfig, pipelines: ProfilePipelines) -> None:
        self._config = config
        self._pipelines = pipelines
        self._sessions: dict[str, PeerSession] = {}
        self._leases: dict[str, Lease] = {}  # each session's hold on its profile's engine
        self._opening = 0
        self.finished: collections.deque[dict[str, Any]] = collections.deque(maxlen=FINISHED_KEPT)
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._trim: asyncio.Future[None] | None = None  # release_free_memory, on a worker thread

    def __len__(self) -> int:
        return len(self._sessions)

    @property
    def full(self) -> bool:
        return len(self._sessions) + self._opening >= self._config.max_sessions

    def sessions(self) -> list[PeerSession]:
        return list(self._sessions.values())

    def profile_of(self, session_id: str) -> str | None:
        """The profile a live session runs on (None: the server's default weights)."""
        lease = self._leases.get(session_id)
        return None if lease is None else lease.profile

    async def open(self, profile: str | None = None) -> PeerSession:
        """A new session on `profile`'s engine (None: the default), counted against
        --max-sessions from now until it closes. Raises `ProfileRefused`/`ProfileFailed`."""
        if self.full:
            raise RuntimeError("no free session slot")
        session_id = secrets.token_hex(4)
        self._opening += 1  # counts against the limit while the pipeline opens
        try:
            lease = await self._pipelines.acquire(profile)
            try:
                pipeline = await lease.factory.open_session(session_id)
                backend = lease.factory.backend
                session = PeerSession(session_id, self._config, pipeline, self._discard, backend=backend)
            except BaseException:
                self._pipelines.release(lease)
                raise
        finally:
            self._opening -= 1
        self._sessions[session_id] = session
        self._leases[session_id] = lease
        self._all_closed.clear()
        return session

    def _discard(self, session: PeerSession) -> None:
        if self._sessions.pop(session.id, None) is not None:
            lease = self._leases.pop(session.id)
            self.finished.append(session.final_stats() | {"profile": lease.profile})
            self._pipelines.release(lease)
            self._release_memory()
        if not self._sessions:
            self._all_closed.set()

    def _release_memory(self) -> None:
        """Trims the heap on a worker thread (20-70 ms on a loaded machine, which the event loop
        and so every other session would otherwise wait); one trim at a time."""
        if self._trim is None or self._trim.done():
            self._trim = asyncio.get_running_loop().run_in_executor(None, release_free_memory)

    async def wait_empty(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._all_closed.wait(), timeout=timeout_s)
        except TimeoutError:
            return False
        return True

    async def close_all(self, reason: str = "server shutting down") -> None:
        sessions = self.sessions()
        if sessions:
            log.info("closing %d session(s)", len(sessions))
            await asyncio.wait(
                [asyncio.ensure_future(s.close(reason)) for s in sessions],
                timeout=self._config.shutdown_timeout_s,
            )
        if self._trim is not None:
            _, pending = await asyncio.wait([self._trim], timeout=TRIM_TIMEOUT_S)
            if pending:
                log.warning("releasing free memory took longer than %.1f s", TRIM_TIMEOUT_S)


def release_free_memory() -> None:
    """Hands the C heap's free pages back to the system (glibc `malloc_trim`; elsewhere nothing;
    ctypes releases the GIL for the call).

    A session's codecs, tracker and pipeline threads allocate and free tens of MB in glibc's
    per-thread arenas, which keep the freed pages: without this the server's RSS grew by about
    15 MB per session served (measured with `benchmarks/webrtc_soak.py`'s churn), with it by a
    few MB over the first sessions and then not."""
    if not sys.platform.startswith("linux"):
        return
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return
    trim(0)
