"""The HTTP side of `stablesync serve`: the page at GET /, offers at POST /offer, clean shutdown.

POST /offer takes {"sdp", "type": "offer"} (aiortc's examples' convention), optionally with
"profile": NAME (profiles.py), and answers {"sdp", "type": "answer", "session", "profile"}.
GET /profiles lists the profiles an offer may name, {"profiles": [NAME, ...], "default": NAME or
null}, names only, behind the same token as /offer. Failures answer JSON {"error": "..."}: 400
malformed JSON or SDP or a profile this server does not serve, 401 missing/wrong token
(`Authorization: Bearer T`, required when a token is set), 429 while an address is backing off
after wrong tokens, 408 a body not received within `body_timeout_s`, 413 body over
`max_body_bytes`, 503 past `max_sessions`, past `max_connections` or when no answer is ready
within `handler_timeout_s`, 500 a profile whose engine cannot be opened. Every refusal is logged
in one line with the peer's address. The offer's ICE candidates are filtered first
(candidates.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hmac
import importlib.resources
import json
import logging
import math
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from stablesync.errors import UserError
from stablesync.realtime.webrtc.candidates import CandidatePolicy, filter_offer, host_addresses, peer_address
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.executor import server_executor
from stablesync.realtime.webrtc.heap import limit_arenas, server_arenas
from stablesync.realtime.webrtc.limits import AuthBackoff, ConnectionLimiter
from stablesync.realtime.webrtc.processing import PipelineFactory
from stablesync.realtime.webrtc.profiles import ProfileFailed, ProfilePipelines, ProfileRefused
from stablesync.realtime.webrtc.registry import SessionRegistry

log = logging.getLogger(__name__)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
CONFIG_KEY = web.AppKey("config", ServeConfig)
PIPELINES_KEY = web.AppKey("pipelines", ProfilePipelines)
AUTH_KEY = web.AppKey("auth_backoff", AuthBackoff)
LINGERING_S = 1.0  # after an early answer (408, 413), the rest of a body is read this long at most
PAGE_FILES = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript")}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self' blob: mediastream:"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def web_dir() -> Path:
    return Path(str(importlib.resources.files("stablesync.realtime") / "web"))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _refuse(
    request: web.Request,
    status: int,
    message: str,
    close: bool = False,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The error answer, logged in one line with the peer's address; `close` ends the
    connection after it instead of reading the rest of an unread body."""
    log.warning("%s %s from %s: %d %s", request.method, request.path, request.remote, status, message)
    response = web.json_response({"error": message}, status=status, headers=headers)
    if close:
        response.force_close()
    return response


def _token_ok(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


async def _page(request: web.Request) -> web.StreamResponse:
    name, content_type = PAGE_FILES[request.path]
    body = (web_dir() / name).read_bytes()
    return web.Response(body=body, content_type=content_type, headers=SECURITY_HEADERS)


async def _sample(request: web.Request) -> web.StreamResponse:
    path = request.app[CONFIG_KEY].sample_path
    if path is None or not path.is_file():
        return _error(404, "no sample: start with `stablesync demo --serve`")
    return web.FileResponse(path, headers={"Cache-Control": "no-store"})


async def _status(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    config = request.app[CONFIG_KEY]
    return web.json_response(
        {
            "sessions": len(registry),
            "max_sessions": config.max_sessions,
            "mode": request.app[PIPELINES_KEY].backend,  # the wire key stays "mode": readers poll it
            "token_required": config.token is not None,
        }
    )


def _parse_offer(body: bytes) -> tuple[str, str, str | None]:
    """(sdp, type, profile) from the request body (profile: None when it names none); ValueError
    with a one-line message otherwise."""
    try:
        data: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"body: expected JSON {{'sdp', 'type'}} ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("body: expected a JSON object {'sdp', 'type'}")
    sdp, type_ = data.get("sdp"), data.get("type")
    if type_ != "offer":
        raise ValueError(f"type: expected 'offer', got {type_!r}")
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise ValueError("sdp: expected an SDP offer text starting with 'v=0'")
    profile = data.get("profile")
    if profile is not None and not isinstance(profile, str):
        raise ValueError(f"profile: expected a profile name (a string), got {profile!r}")
    return sdp, type_, profile


def _check_token(request: web.Request, token: str) -> web.Response | None:
    """None when the token is right; otherwise the 401 (or, while backing off, 429) answer."""
    backoff, peer = request.app[AUTH_KEY], request.remote or "?"
    wait_s = backoff.blocked_for_s(peer)
    if wait_s > 0:
        retry_s = math.ceil(wait_s)
        message = f"token: too many wrong tokens from {peer}; retry in {retry_s} s"
        return _refuse(request, 429, message, close=True, headers={"Retry-After": str(retry_s)})
    if not _token_ok(request, token):
        block_s = backoff.failed(peer)
        message = "token: missing or wrong (send 'Authorization: Bearer <token>')"
        return _refuse(request, 401, f"{message}; next offer accepted in {block_s:g} s", close=True)
    backoff.succeeded(peer)
    return None


async def _read_body(request: web.Request, config: ServeConfig) -> bytes | web.Response:
    """The offer's body, or the answer that refuses it (413, 408; a client gone mid-body is
    logged once and gets nothing)."""
    too_large = f"body: larger than {config.max_body_bytes} bytes"
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _refuse(request, 413, too_large, close=True)
    try:
        return await asyncio.wait_for(request.read(), timeout=config.body_timeout_s)
    except web.HTTPRequestEntityTooLarge:
        return _refuse(request, 413, too_large, close=True)
    except TimeoutError:
        return _refuse(request, 408, f"body: not received within {config.body_timeout_s:g} s", close=True)
    except (RequestPayloadError, ConnectionError) as exc:
        log.warning(
            "%s %s from %s: client disconnected mid-body (%s)",
            request.method,
            request.path,
            request.remote,
            " ".join(str(exc).split()) or type(exc).__name__,
        )
        response = web.Response(status=400)
        response.force_close()
        return response


def _candidate_policy(request: web.Request, config: ServeConfig) -> CandidatePolicy:
    peer = peer_address(request.remote)
    return CandidatePolicy(
        peer=peer,
        allowed_networks=config.allowed_networks,
        local_addresses=host_addresses() if peer is not None and peer.is_loopback else frozenset(),
        allow_mdns=config.allow_mdns,
        has_stun=config.has_stun,
        has_turn=config.has_turn,
        max_per_section=config.max_candidates_per_section,
    )


async def _offer(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    registry = request.app[REGISTRY_KEY]
    if config.token is not None and (refusal := _check_token(request, config.token)) is not None:
        return refusal
    body = await _read_body(request, config)
    if isinstance(body, web.Response):
        return body
    try:
        sdp, type_, profile = _parse_offer(body)
        if profile is not None:
            request.app[PIPELINES_KEY].weights_of(profile)  # served here, or refused (400)
    except ValueError as exc:
        return _refuse(request, 400, str(exc))
    if registry.full:
        full = f"server full: {config.max_sessions} session(s) already; try again later"
        return _refuse(request, 503, full)
    sdp, candidates = filter_offer(sdp, _candidate_policy(request, config))
    busy = f"server busy: no answer within {config.handler_timeout_s:g} s; try again later"
    deadline_s = asyncio.get_running_loop().time() + config.handler_timeout_s
    try:
        session = await asyncio.wait_for(registry.open(profile), timeout=config.handler_timeout_s)
    except TimeoutError:
        return _refuse(request, 503, busy)
    except ProfileRefused as exc:  # removed since the check above
        return _refuse(request, 400, str(exc))
    except ProfileFailed as exc:
        return _refuse(request, 500, str(exc))
    try:
        remaining_s = max(0.0, deadline_s - asyncio.get_running_loop().time())
        answer = await asyncio.wait_for(session.answer(sdp, type_, candidates), timeout=remaining_s)
    except TimeoutError:
        await session.close("no answer in time")
        return _refuse(request, 503, busy)
    except Exception as exc:  # aiortc raises many kinds on a malformed offer
        await session.close("bad offer")
        message = " ".join(str(exc).split()) or type(exc).__name__
        return _refuse(request, 400, f"sdp: cannot use this offer: {message}")
    profile_used = registry.profile_of(session.id)
    log.info(
        "session %s: answered %s (%d/%d; %s; %s)",
        session.id,
        request.remote,
        len(registry),
        config.max_sessions,
        candidates.summary(),
        f"profile {profile_used}" if profile_used else "default weights",
    )
    reply = {"sdp": answer.sdp, "type": answer.type, "session": session.id, "profile": profile_used}
    return web.json_response(reply)


async def _profiles(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    if config.token is not None and (refusal := _check_token(request, config.token)) is not None:
        return refusal
    pipelines = request.app[PIPELINES_KEY]
    listing = {"profiles": pipelines.names(), "default": pipelines.default_name}
    return web.json_response(listing, headers={"Cache-Control": "no-store"})


async def _close_sessions(app: web.Application) -> None:
    await app[REGISTRY_KEY].close_all()
    await app[PIPELINES_KEY].aclose()


def create_app(config: ServeConfig, pipelines: PipelineFactory | ProfilePipelines) -> web.Application:
    """The server's app; a plain `PipelineFactory` serves every session and no profile."""
    if not isinstance(pipelines, ProfilePipelines):
        pipelines = ProfilePipelines(pipelines)
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG_KEY] = config
    app[PIPELINES_KEY] = pipelines
    app[REGISTRY_KEY] = SessionRegistry(config, pipelines)
    app[AUTH_KEY] = AuthBackoff(config.auth_backoff_s, config.auth_backoff_max_s)
    for path in PAGE_FILES:
        app.router.add_get(path, _page)
    app.router.add_get("/status", _status)
    app.router.add_get("/sample.webm", _sample)
    app.router.add_get("/profiles", _profiles)
    app.router.add_post("/offer", _offer)
    app.on_shutdown.append(_close_sessions)  # aiohttp waits on open peers otherwise
    return app


class RunningServer:
    def __init__(self, app: web.Application, host: str, port: int, connections: ConnectionLimiter) -> None:
        self.app = app
        self.port = port
        self.connections = connections
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    @property
    def registry(self) -> SessionRegistry:
        return self.app[REGISTRY_KEY]

    @property
    def profiles(self) -> ProfilePipelines:
        return self.app[PIPELINES_KEY]


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Keeps what exists before the first session (modules, the engine: ~150 000 objects) out of
    the garbage collector's passes while the server runs, so the collection after each closed
    session (registry.py) traverses only what sessions made: 1-6 ms instead of 160-190 ms on the
    2-core machine, the event loop waiting all that time."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.asynccontextmanager
async def running_server(
    config: ServeConfig, pipelines: PipelineFactory | ProfilePipelines
) -> AsyncIterator[RunningServer]:
    """Serves until the block exits, then closes every peer connection (bounded in time).

    A connection that sends no complete request within `header_timeout_s` is closed (aiohttp's
    keep-alive timer, which also runs before the first request); the listening socket hands
    connections to aiohttp through a `ConnectionLimiter`. The blocking work the loop hands off
    runs on the server's own pool (executor.py), shut down after the sessions."""
    app = create_app(config, pipelines)
    with server_executor(asyncio.get_running_loop(), config.max_sessions), startup_objects_frozen():
        runner = web.AppRunner(
            app,
            handle_signals=False,
            shutdown_timeout=1.0,
            access_log=None,
            keepalive_timeout=config.header_timeout_s,
            lingering_time=LINGERING_S,
        )
        await runner.setup()
        assert runner.server is not None
        limiter = ConnectionLimiter(runner.server, config.max_connections)
        try:
            listener = await asyncio.get_running_loop().create_server(
                limiter, config.host, config.port, reuse_address=True
            )
        except OSError as exc:
            await runner.cleanup()
            raise UserError(
                f"--host {config.host} --port {config.port}: cannot listen ({exc.strerror})"
            ) from None
        port = listener.sockets[0].getsockname()[1] if listener.sockets else config.port
        app[PIPELINES_KEY].warm()
        try:
            yield RunningServer(app, config.host, port, limiter)
        finally:
            listener.close()
            try:
                await asyncio.wait_for(runner.cleanup(), timeout=config.shutdown_timeout_s + 1.0)
            except TimeoutError:
                log.warning("shutdown took longer than %.1f s", config.shutdown_timeout_s + 1.0)


async def serve_until_signal(
    config: ServeConfig,
    pipelines: PipelineFactory | ProfilePipelines,
    on_ready: Callable[[RunningServer], None],
) -> list[dict[str, Any]]:
    """Serves until SIGINT/SIGTERM, then closes every peer connection (< 5 s) and returns the
    final stats message of every session served (the last `FINISHED_KEPT`). The process's C heap
    gets one arena per core from here on (heap.py)."""
    limit_arenas(server_arenas())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_server(config, pipelines) as server:
            on_ready(server)
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return list(server.registry.finished)
