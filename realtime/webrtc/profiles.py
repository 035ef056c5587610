"""Which engine each `stablesync serve` session runs on: the server's weights, or a profile.

An offer may name a personal profile (`stablesync enroll NAME`): `"profile": "NAME"` in its JSON,
which the page sets from its chooser. The server serves the complete profiles of its user's own
profile folder (`$XDG_DATA_HOME/stablesync/profiles`, read on each request, so a profile enrolled
while it runs is served too); an offer naming none gets the weights the server started with
(`--weights`, `--profile NAME` or the shipped ones), and so does one naming that same profile.

Sessions of one profile share one `PipelineFactory`: one engine and one `InferenceBatcher`. The
default's is opened at start and closed at shutdown. A profile's is opened when its first
session opens (the engine loads on a worker thread: seconds), kept while any of its sessions is
open, and closed `idle_s` after its last one closed (a page reloaded in that time reuses it), at
once when another profile's engine is to be opened (so the engines open are the default's, those
in use and at most the idle ones not yet replaced), and at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stablesync.enroll.profiles import NAME_PATTERN, is_complete, list_profiles, profile_dir, profiles_root
from stablesync.realtime.webrtc.processing import PipelineFactory

if TYPE_CHECKING:
    from stablesync.export.engine import Engine
    from stablesync.realtime.pipeline.session import SessionConfig

log = logging.getLogger(__name__)
ProfileOpener = Callable[[Path], Awaitable[PipelineFactory]]  # export directory -> its factory
OPEN_WAIT_S = 30.0  # at shutdown: how long an engine still loading is waited for


class ProfileRefused(ValueError):
    """The offer named a profile this server does not serve (one line: answered 400)."""


class ProfileFailed(RuntimeError):
    """A profile's engine could not be opened (one line: answered 500; the traceback is logged)."""


@dataclasses.dataclass(eq=False)
class _Engine:
    name: str
    weights: Path
    opening: asyncio.Task[PipelineFactory] | None = None
    factory: PipelineFactory | None = None
    sessions: int = 0
    idle: asyncio.TimerHandle | None = None


@dataclasses.dataclass(frozen=True)
class Lease:
    """One session's hold on a factory; hand it back with `ProfilePipelines.release` when the
    session has closed."""

    factory: PipelineFactory
    profile: str | None  # the profile's name; None: the server's default weights (not a profile)
    _engine: _Engine | None = None  # None: the default factory, never closed by a release


class ProfilePipelines:
    def __init__(
        self,
        default: PipelineFactory,
        opener: ProfileOpener | None = None,
        default_weights: Path | None = None,
        idle_s: float = 30.0,
    ) -> None:
        """`default` serves offers naming no profile. Without an `opener` (passthrough, or a
        server given one factory) no profile is served."""
        self.default = default
        self._opener = opener
        self._default_weights = default_weights.resolve() if default_weights is not None else None
        self._idle_s = idle_s
        self._engines: dict[Path, _Engine] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def backend(self) -> str:
        return self.default.backend

    def warm(self) -> None:
        """From the running loop, once the server listens: sessions in worker processes get
        their first worker loading now, not when the first peer comes."""
        from stablesync.realtime.webrtc.worker_process import WorkerPipelines

        if isinstance(self.default, WorkerPipelines):
            self.default.warm()

    @property
    def serves_profiles(self) -> bool:
        return self._opener is not None

    @property
    def default_name(self) -> str | None:
        """The profile the server was started with (`serve --profile NAME`); None otherwise."""
        weights = self._default_weights
        if weights is None or weights.parent != profiles_root().resolve():
            return None
        return weights.name

    def names(self) -> list[str]:
        """The profiles an offer may name now (complete ones only), sorted."""
        if self._opener is None:
            return []
        return [info.name for info in list_profiles() if info.complete]

    def weights_of(self, name: str) -> Path:
        """The export directory of the profile an offer names; `ProfileRefused` otherwise."""
        if not NAME_PATTERN.fullmatch(name):
            raise ProfileRefused(
                f"profile: expected a profile name (letters, digits, '_', '-', '.'), got {name!r}"
            )
        if self._opener is None:
            raise ProfileRefused(f"profile {name!r}: this server serves no profiles ({self.backend} only)")
        path = profile_dir(name)
        if not is_complete(path):
            raise ProfileRefused(
                f"profile {name!r}: not one of this server's profiles (GET /profiles lists them)"
            )
        return path.resolve()

    def in_use(self) -> dict[str, int]:
        """Sessions per profile engine open now (the default's not counted); idle ones show 0."""
        return {e.name: e.sessions for e in self._engines.values() if e.factory is not None}

    def factory_of(self, name: str) -> PipelineFactory | None:
        """The open factory of a profile (None: not open now)."""
        return next((e.factory for e in self._engines.values() if e.name == name), None)

    async def acquire(self, name: str | None) -> Lease:
        """The factory for a session of profile `name` (None: the default), opening its engine if
        none is open; raises `ProfileRefused` or `ProfileFailed`."""
        if name is None:
            return Lease(self.default, self.default_name)
        weights = self.weights_of(name)
        if weights == self._default_weights:
            return Lease(self.default, name)
        engine = self._engines.get(weights)
        if engine is None:
            self._retire_idle()
            engine = self._engines[weights] = _Engine(name, weights)
            engine.opening = asyncio.get_running_loop().create_task(self._open(engine))
        assert engine.opening is not None
        engine.sessions += 1  # counted before the wait, so an engine that opens finds a user
        if engine.idle is not None:
            engine.idle.cancel()
            engine.idle = None
        lease = Lease(self.default, name, engine)
        try:
            factory = await asyncio.shield(engine.opening)  # a cancelled offer leaves the open running
        except BaseException:
            self.release(lease)
            raise
        return dataclasses.replace(lease, factory=factory)

    def release(self, lease: Lease) -> None:
        """A session of this lease has closed: its profile's engine goes idle after its last."""
        engine = lease._engine
        if engine is None:
            return
        engine.sessions -= 1
        if engine.sessions == 0 and engine.factory is not None:
            self._schedule_idle(engine)

    async def _open(self, engine: _Engine) -> PipelineFactory:
        assert self._opener is not None
        try:
            factory = await self._opener(engine.weights)
        except Exception as exc:
            if self._engines.get(engine.weights) is engine:
                del self._engines[engine.weights]
            log.exception("profile %s: cannot open its engine", engine.name)
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ProfileFailed(f"profile {engine.name!r}: cannot open its engine ({reason})") from None
        engine.factory = factory
        log.info("profile %s: engine opened (%s)", engine.name, factory.backend)
        if engine.sessions == 0:
            self._schedule_idle(engine)
        return factory

    def _schedule_idle(self, engine: _Engine) -> None:
        if engine.idle is not None:
            engine.idle.cancel()
        engine.idle = asyncio.get_running_loop().call_later(self._idle_s, self._retire, engine)

    def _retire(self, engine: _Engine) -> None:
        """Closes an idle engine (still unused, still the one open for its weights)."""
        engine.idle = None
        if engine.sessions or engine.factory is None or self._engines.get(engine.weights) is not engine:
            return
        del self._engines[engine.weights]
        log.info("profile %s: no session left; closing its engine", engine.name)
        task = asyncio.get_running_loop().create_task(self._close_factory(engine.name, engine.factory))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _retire_idle(self) -> None:
        for engine in list(self._engines.values()):
            if engine.sessions == 0 and engine.factory is not None:
                if engine.idle is not None:
                    engine.idle.cancel()
                self._retire(engine)

    @staticmethod
    async def _close_factory(name: str, factory: PipelineFactory) -> None:
        try:
            await factory.aclose()
        except Exception:  # a third-party close: logged, never raised into the server
            log.exception("profile %s: its engine failed to close", name)

    async def aclose(self) -> None:
        """Closes every engine: the profiles' (waiting up to `OPEN_WAIT_S` for one still
        loading), then the default's."""
        engines, self._engines = list(self._engines.values()), {}
        opening = [e.opening for e in engines if e.opening is not None and not e.opening.done()]
        if opening:
            await asyncio.wait(opening, timeout=OPEN_WAIT_S)
        for engine in engines:
            if engine.idle is not None:
                engine.idle.cancel()
            factory = engine.factory
            if factory is None and engine.opening is not None and engine.opening.done():
                with contextlib.suppress(BaseException):
                    factory = engine.opening.result()
            if factory is not None:
                await self._close_factory(engine.name, factory)
        if self._closing:
            await asyncio.wait(list(self._closing))
        await self.default.aclose()


def lipsync_opener(
    backend: str,
    session_cfg: SessionConfig,
    inference_workers: int,
    in_process: bool = False,
    spares: int = 1,
) -> ProfileOpener:
    """Opens a profile as `serve` opens its default (`lipsync_pipelines`): its engine on `backend`
    (`open_serve_engine`), its sessions in worker processes or, with `in_process`, in a
    `LipSyncFactory` with `session_cfg` around it; `spares` workers kept loaded ahead."""
    from stablesync.realtime.pipeline.loading import open_serve_engine

    async def open_profile(weights: Path) -> PipelineFactory:
        engine = await asyncio.to_thread(open_serve_engine, weights, backend)
        return lipsync_pipelines(engine, weights, session_cfg, inference_workers, in_process, spares)

    return open_profile


def lipsync_pipelines(
    engine: Engine,
    weights: Path,
    session_cfg: SessionConfig,
    inference_workers: int,
    in_process: bool,
    spares: int = 1,
) -> PipelineFactory:
    """On onnxruntime's CPU backend a worker process per session (worker_process.py: sessions in
    one process wait on each other for the interpreter lock), `spares` of them loaded ahead,
    unless `in_process`; otherwise (and on GPU backends, where one batch serves every session)
    one shared batcher here."""
    from stablesync.realtime.webrtc.lipsync import PARALLEL_BACKENDS, LipSyncFactory
    from stablesync.realtime.webrtc.worker_process import WorkerPipelines
    from stablesync.realtime.webrtc.worker_wire import WorkerSpec

    if engine.backend in PARALLEL_BACKENDS and not in_process:
        return WorkerPipelines(WorkerSpec(weights, engine.backend, session_cfg), engine, spares)
    return LipSyncFactory(engine, session_cfg, inference_workers=inference_workers)
