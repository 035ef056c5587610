"""The live sessions: a bounded set, each removed by itself when it closes."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import secrets
from typing import Any

from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.heap import release_free_memory
from stablesync.realtime.webrtc.peer import PeerSession
from stablesync.realtime.webrtc.profiles import Lease, ProfilePipelines

log = logging.getLogger(__name__)
FINISHED_KEPT = 1000  # final stats of closed sessions kept for `serve --stats-json`
RELEASE_TIMEOUT_S = 1.0


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
        self._release: asyncio.Task[None] | None = None  # _release_memory's work
        self._release_wanted = False

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
        """Frees what closed sessions left behind, soon after this session's close returns; one
        release at a time, and one more when a session closes during it."""
        self._release_wanted = True
        if self._release is None or self._release.done():
            self._release = asyncio.get_running_loop().create_task(self._collect_and_trim())

    async def _collect_and_trim(self) -> None:
        """A full garbage collection, then the C heap's free pages handed back on a worker
        thread (20-70 ms on a loaded machine, which the event loop would otherwise wait).

        A closed session's objects are left in reference cycles (aiortc's peer connection, its
        transports and RTP buffers, the pipeline, its workers and frames: about 2 500 objects),
        which Python's automatic collections free only in their rare full passes: sessions
        opened and closed one after another grew the C heap in use by about 12 MB each until
        one ran, and with this it stays flat."""
        loop = asyncio.get_running_loop()
        while self._release_wanted:
            self._release_wanted = False
            await asyncio.sleep(0)  # the closing session's task ends and lets go of it
            gc.collect()
            await loop.run_in_executor(None, release_free_memory)

    async def wait_released(self) -> None:
        """Returns once the memory of the sessions closed so far has been released."""
        while self._release is not None and not self._release.done():
            await asyncio.shield(self._release)

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
        if self._release is not None:
            _, pending = await asyncio.wait([self._release], timeout=RELEASE_TIMEOUT_S)
            if pending:
                log.warning("releasing free memory took longer than %.1f s; cancelled", RELEASE_TIMEOUT_S)
                self._release.cancel()
