"""The HTTP side of `stablesync serve`: the page at GET /, offers at POST /offer, clean shutdown.

POST /offer takes {"sdp", "type": "offer"} (aiortc's examples' convention) and answers
{"sdp", "type": "answer", "session"}. Failures answer JSON {"error": "..."}: 400 malformed
JSON or SDP, 401 missing/wrong token (`Authorization: Bearer T`, required when a token is set),
413 body over `max_body_bytes`, 503 past `max_sessions`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import importlib.resources
import json
import logging
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from realtime.webrtc.config import ServeConfig
from realtime.webrtc.processing import PipelineFactory
from realtime.webrtc.registry import SessionRegistry
from stablesync.errors import UserError

log = logging.getLogger(__name__)
REGISTRY_KEY = web.AppKey("registry", SessionRegistry)
CONFIG_KEY = web.AppKey("config", ServeConfig)
PIPELINES_KEY = web.AppKey("pipelines", PipelineFactory)
NEGOTIATION_TIMEOUT_S = 10.0
PAGE_FILES = {"/": ("index.html", "text/html"), "/app.js": ("app.js", "text/javascript")}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; media-src 'self' blob: mediastream:"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def web_dir() -> Path:
    return Path(str(importlib.resources.files("realtime") / "web"))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


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
            "mode": request.app[PIPELINES_KEY].mode,
            "token_required": config.token is not None,
        }
    )


def _parse_offer(body: bytes) -> tuple[str, str]:
    """(sdp, type) from the request body; ValueError with a one-line message otherwise."""
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
    return sdp, type_


async def _offer(request: web.Request) -> web.Response:
    config = request.app[CONFIG_KEY]
    registry = request.app[REGISTRY_KEY]
    if config.token is not None and not _token_ok(request, config.token):
        return _error(401, "token: missing or wrong (send 'Authorization: Bearer <token>')")
    if request.content_length is not None and request.content_length > config.max_body_bytes:
        return _error(413, f"body: larger than {config.max_body_bytes} bytes")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"body: larger than {config.max_body_bytes} bytes")
    try:
        sdp, type_ = _parse_offer(body)
    except ValueError as exc:
        return _error(400, str(exc))
    if registry.full:
        return _error(503, f"server full: {config.max_sessions} session(s) already; try again later")
    session = await registry.open()
    try:
        answer = await asyncio.wait_for(session.answer(sdp, type_), timeout=NEGOTIATION_TIMEOUT_S)
    except Exception as exc:  # aiortc raises many kinds on a malformed offer
        await session.close("bad offer")
        message = " ".join(str(exc).split()) or type(exc).__name__
        return _error(400, f"sdp: cannot use this offer: {message}")
    log.info("session %s: answered (%d/%d)", session.id, len(registry), config.max_sessions)
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "session": session.id})


async def _close_sessions(app: web.Application) -> None:
    await app[REGISTRY_KEY].close_all()
    await app[PIPELINES_KEY].aclose()


def create_app(config: ServeConfig, pipelines: PipelineFactory) -> web.Application:
    app = web.Application(client_max_size=config.max_body_bytes)
    app[CONFIG_KEY] = config
    app[PIPELINES_KEY] = pipelines
    app[REGISTRY_KEY] = SessionRegistry(config, pipelines)
    for path in PAGE_FILES:
        app.router.add_get(path, _page)
    app.router.add_get("/status", _status)
    app.router.add_get("/sample.webm", _sample)
    app.router.add_post("/offer", _offer)
    app.on_shutdown.append(_close_sessions)  # aiohttp waits on open peers otherwise
    return app


class RunningServer:
    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    @property
    def registry(self) -> SessionRegistry:
        return self.app[REGISTRY_KEY]


@contextlib.asynccontextmanager
async def running_server(config: ServeConfig, pipelines: PipelineFactory) -> AsyncIterator[RunningServer]:
    """Serves until the block exits, then closes every peer connection (bounded in time)."""
    app = create_app(config, pipelines)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise UserError(
            f"--host {config.host} --port {config.port}: cannot listen ({exc.strerror})"
        ) from None
    server = getattr(site, "_server", None)
    port = server.sockets[0].getsockname()[1] if server is not None and server.sockets else config.port
    try:
        yield RunningServer(app, config.host, port)
    finally:
        try:
            await asyncio.wait_for(runner.cleanup(), timeout=config.shutdown_timeout_s + 1.0)
        except TimeoutError:
            log.warning("shutdown took longer than %.1f s", config.shutdown_timeout_s + 1.0)


async def serve_until_signal(
    config: ServeConfig, pipelines: PipelineFactory, on_ready: Callable[[RunningServer], None]
) -> list[dict[str, Any]]:
    """Serves until SIGINT/SIGTERM, then closes every peer connection (< 5 s) and returns the
    final stats message of every session served (the last `FINISHED_KEPT`)."""
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
