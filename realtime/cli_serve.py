"""`stablesync serve`: the lip-sync filter over WebRTC for browsers and apps.

Opens one engine, serves the page at http://HOST:PORT/ and WebRTC offers at POST /offer, and
runs every peer through one shared batcher. Binds 127.0.0.1 unless told otherwise; any other
address needs --token. Ctrl-C or SIGTERM closes every peer connection and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from realtime.webrtc.config import ServeConfig
from realtime.webrtc.processing import PassthroughFactory, PipelineFactory
from realtime.webrtc.server import RunningServer, serve_until_signal
from stablesync.errors import UserError

PASSTHROUGH = "passthrough"


def build_parser(prog: str) -> argparse.ArgumentParser:
    from realtime.cli_common import add_engine_options

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--token", default=None, help="secret the page must send; required off 127.0.0.1")
    parser.add_argument("--max-sessions", type=int, default=4, help="peers served at once (default 4)")
    add_engine_options(parser)
    parser.set_defaults(quiet=True)
    parser.description = (parser.description or "") + f" --backend {PASSTHROUGH} returns video untouched."
    return parser


def _config(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(host=args.host, port=args.port, token=args.token, max_sessions=args.max_sessions)


def open_pipelines(args: argparse.Namespace) -> PipelineFactory:
    """The shared engine + batcher (or passthrough) for every session."""
    if args.backend == PASSTHROUGH:
        return PassthroughFactory()
    from realtime.cli_common import session_config
    from realtime.engines import open_engine
    from realtime.webrtc.lipsync import LipSyncFactory

    session_cfg = session_config(args, realtime=True)
    engine = open_engine(args.weights, args.backend, args.threads)
    return LipSyncFactory(engine, session_cfg)


def page_url(server: RunningServer, token: str | None) -> str:
    return server.url + (f"#token={token}" if token else "")


def main(args: argparse.Namespace) -> int:
    config = _config(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    pipelines = open_pipelines(args)

    def ready(server: RunningServer) -> None:
        print(f"stablesync serve: open {page_url(server, config.token)} ({pipelines.mode})", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_until_signal(config, pipelines, ready))
    print("stablesync serve: stopped", file=sys.stderr)
    return 0


__all__ = ["UserError", "build_parser", "main"]
