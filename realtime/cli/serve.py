"""`stablesync serve`: the lip-sync filter over WebRTC for browsers and apps.

Opens one engine, serves the page at http://HOST:PORT/ and WebRTC offers at POST /offer, and
runs each peer's pipeline in a worker process of its own on the CPU backend (--in-process, and
GPU backends: every peer in this process through one shared batcher). An offer (or the page's
chooser) may name one of your profiles (`stablesync enroll NAME`): its sessions get that
profile's engine; --profile (or --weights) sets what offers naming none get. Binds 127.0.0.1
unless told otherwise; any other address needs --token. Ctrl-C or SIGTERM closes every peer
connection and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import sys
from pathlib import Path

from stablesync.errors import UserError
from stablesync.realtime.cli.startup import StartUpBlock
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.processing import PassthroughFactory, PipelineFactory
from stablesync.realtime.webrtc.profiles import ProfilePipelines
from stablesync.realtime.webrtc.server import RunningServer, serve_until_signal

PASSTHROUGH = "passthrough"


def build_parser(prog: str) -> argparse.ArgumentParser:
    from stablesync.realtime.cli.common import add_engine_options

    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    parser.add_argument("--token", default=None, help="secret the page must send; required off 127.0.0.1")
    parser.add_argument("--max-sessions", type=int, default=4, help="peers served at once (default 4)")
    parser.add_argument(
        "--max-connections", type=int, default=64, help="HTTP connections open at once (default 64)"
    )
    repeatable = {
        "--allow-candidates": ("CIDR", "also use peers' host ICE candidates in this block (NAT, proxy)"),
        "--ice-server": ("URL", "STUN/TURN server (stun:HOST:PORT, turn:HOST:PORT); none by default"),
    }
    for flag, (metavar, text) in repeatable.items():
        parser.add_argument(flag, action="append", default=[], metavar=metavar, help=text + "; repeatable")
    parser.add_argument("--allow-mdns", action="store_true", help="use peers' .local (mDNS) ICE candidates")
    parser.add_argument("--turn-credentials", metavar="USER:PASSWORD", help="for the turn: servers")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every session in this process, sharing one batcher (the default on onnxruntime's"
        " CPU backend: a worker process per session, which keeps two sessions from waiting on each"
        " other; GPU backends always share)",
    )
    parser.add_argument(
        "--spares",
        type=int,
        default=1,
        metavar="N",
        help="worker processes kept loaded for the next sessions (default 1, ~260 MB each): as many"
        " as peers may join within a second or two of each other; 0 loads one per session as it"
        " comes (its first 1-2 s pass through)",
    )
    # --stats-json: the final stats of every session, at exit
    add_engine_options(parser, 2, "with --in-process: inference calls at once, one onnxruntime thread each")
    parser.description = (parser.description or "") + f" --backend {PASSTHROUGH} returns video untouched."
    return parser


def _config(args: argparse.Namespace) -> ServeConfig:
    user, _, password = (args.turn_credentials or "").partition(":")
    return ServeConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        max_sessions=args.max_sessions,
        max_connections=args.max_connections,
        allow_candidates=tuple(args.allow_candidates),
        allow_mdns=args.allow_mdns,
        ice_servers=tuple(args.ice_server),
        turn_username=user or None,
        turn_password=password or None,
    )


def spares_of(args: argparse.Namespace) -> int:
    """`--spares` (1 where the command has no such flag: `demo --serve`), checked."""
    spares = int(getattr(args, "spares", 1))
    max_sessions = int(getattr(args, "max_sessions", spares))
    if not 0 <= spares <= max_sessions:
        raise UserError(f"--spares {spares}: expected 0 to --max-sessions ({max_sessions})")
    return spares


def open_pipelines(args: argparse.Namespace, in_process: bool = False) -> PipelineFactory:
    """What every session runs on: the engine, opened here, and a worker process per session
    or, `in_process`, one shared batcher (`lipsync_pipelines`); or passthrough."""
    if args.backend == PASSTHROUGH:
        return PassthroughFactory()
    from stablesync.realtime.cli.common import session_config
    from stablesync.realtime.pipeline.loading import open_serve_engine, resolve_weights
    from stablesync.realtime.webrtc.profiles import lipsync_pipelines

    session_cfg = session_config(args, realtime=True)
    engine = open_serve_engine(args.weights, args.backend)
    weights = resolve_weights(args.weights)
    return lipsync_pipelines(engine, weights, session_cfg, args.threads, in_process, spares_of(args))


def open_profiles(
    args: argparse.Namespace, default: PipelineFactory, config: ServeConfig
) -> ProfilePipelines:
    """`default` for offers naming no profile; each profile's engine opened as `default`'s was,
    on first use (passthrough serves no profile)."""
    if args.backend == PASSTHROUGH:
        return ProfilePipelines(default)
    from stablesync.realtime.cli.common import session_config
    from stablesync.realtime.pipeline.loading import resolve_weights
    from stablesync.realtime.webrtc.profiles import lipsync_opener

    session_cfg = session_config(args, realtime=True)
    opener = lipsync_opener(args.backend, session_cfg, args.threads, args.in_process, spares_of(args))
    return ProfilePipelines(default, opener, resolve_weights(args.weights), idle_s=config.profile_idle_s)


def page_url(server: RunningServer, token: str | None) -> str:
    return server.url + (f"#token={token}" if token else "")


def start_up_block(pipelines: ProfilePipelines, server: RunningServer, config: ServeConfig) -> StartUpBlock:
    """The default model (or passthrough) and tracker, the profiles offers may name, and where
    the page is."""
    from stablesync.enroll.profiles import profiles_root
    from stablesync.realtime.webrtc.lipsync import LipSyncFactory
    from stablesync.realtime.webrtc.worker_process import WorkerPipelines

    default = pipelines.default
    block = StartUpBlock()
    if isinstance(default, WorkerPipelines):
        block.engine(default.engine)
        ahead = f"{default.spares} loaded ahead (--spares)" if default.spares else "none loaded ahead"
        block.add("sessions", f"a worker process each, {ahead} (--in-process: all in this one)")
    elif isinstance(default, LipSyncFactory):
        block.engine(default.batcher.engine)
        block.add("sessions", "all in this process, one shared batcher")
    else:
        block.engine(None)
    if pipelines.serves_profiles:
        names = pipelines.names()
        listed = ", ".join(names) if names else "none yet"
        default_name = pipelines.default_name
        default_text = f"profile {default_name}" if default_name else "the weights above"
        text = f"per session, chosen on the page: {listed} (from {profiles_root()}); default: {default_text}"
        block.add("profiles", text)
    block.add("page", f"{page_url(server, config.token)} (up to {config.max_sessions} peers at once)")
    if config.token:
        block.add("access", "the page link above carries the token: share it only with those it is for")
    else:
        block.add("access", f"no token: only this machine ({config.host}) can open the page")
    return block


def main(args: argparse.Namespace) -> int:
    config = _config(args)
    level = logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    pipelines = open_profiles(args, open_pipelines(args, args.in_process), config)

    def ready(server: RunningServer) -> None:
        if not args.quiet:
            print(start_up_block(pipelines, server, config).text(), file=sys.stderr, flush=True)
        print(f"stablesync serve: open {page_url(server, config.token)} ({pipelines.backend})", flush=True)

    sessions: list[dict[str, object]] = []
    with contextlib.suppress(KeyboardInterrupt):
        sessions = asyncio.run(serve_until_signal(config, pipelines, ready))
    print(f"stablesync serve: stopped after {len(sessions)} session(s)", file=sys.stderr)
    if args.stats_json is not None:
        write_json_atomic(
            args.stats_json, {"command": "serve", "backend": pipelines.backend, "sessions": sessions}
        )
        print(f"wrote {args.stats_json}", file=sys.stderr)
    return 0


def write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


__all__ = ["UserError", "build_parser", "main"]
