"""`serve`'s memory over sessions opened and closed one after another, without the soak's long
session: the server runs in this process (so glibc's and Python's own figures can be read), its
peer in a child process that opens the next session only when told, after the server has closed
the previous one and released its memory. After each session: RSS, glibc's heap figures
(`common.malloc_mb`), OS threads, and whether the session's RTCPeerConnection is still alive.

`python -m stablesync.benchmarks.serve_churn --out benchmarks/out/serve_churn.json [--sessions 10]
[--seconds 5] [--backend ort-cpu|passthrough] [--arenas N|default] [--no-auto-gc]`

`--arenas` caps glibc's malloc arenas (`server`, the default: as `serve` does, one per core;
a number; `default`: glibc's own limit, 8 per core); `--no-auto-gc` turns Python's automatic collector
off, so only what the server frees itself counts.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import weakref
from pathlib import Path
from typing import Any

from stablesync.benchmarks.common import malloc_mb, os_threads, rss_mb, write_result

PEER = """
import asyncio, sys
from stablesync.benchmarks.webrtc_sessions import _clip
from stablesync.realtime.webrtc.client import run_client

async def main(url: str, seconds: float) -> None:
    clip, loop = _clip(), asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "go":
        result = await run_client(url, clip, seconds, settle_s=0.5)
        print("error" if result.error else "ok", flush=True)

asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""
OPEN_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 30.0
SETTLE_S = 1.0  # after the release: the closed session's last threads end


def _factory(backend: str) -> Any:
    from stablesync.realtime.webrtc import PassthroughFactory

    if backend == "passthrough":
        return PassthroughFactory()
    from stablesync.realtime.pipeline.loading import open_serve_engine
    from stablesync.realtime.pipeline.session import SessionConfig
    from stablesync.realtime.webrtc.lipsync import LipSyncFactory

    engine = open_serve_engine(None, backend)
    return LipSyncFactory(engine, SessionConfig(), inference_workers=2)


async def _session_pc(server: Any) -> weakref.ref[Any] | None:
    """A weak reference to the open session's peer connection, once the server holds one."""
    deadline_s = asyncio.get_running_loop().time() + OPEN_TIMEOUT_S
    while asyncio.get_running_loop().time() < deadline_s:
        sessions = server.registry.sessions()
        if sessions:
            return weakref.ref(sessions[0].pc)
        await asyncio.sleep(0.05)
    return None


async def churn(sessions: int, seconds: float, backend: str) -> list[dict[str, Any]]:
    from stablesync.realtime.webrtc import ServeConfig, running_server

    rows = []
    async with running_server(ServeConfig(port=0), _factory(backend)) as server:
        peer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PEER,
            server.url,
            str(seconds),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert peer.stdin is not None and peer.stdout is not None
        try:
            for index in range(1, sessions + 1):
                peer.stdin.write(b"go\n")
                await peer.stdin.drain()
                pc = await _session_pc(server)
                outcome = (await peer.stdout.readline()).decode().strip() or "peer gone"
                closed = await server.registry.wait_empty(CLOSE_TIMEOUT_S)
                await server.registry.wait_released()
                await asyncio.sleep(SETTLE_S)
                row = {"session": index, "peer": outcome, "closed": closed, "rss_mb": round(rss_mb(), 1)}
                row |= {**malloc_mb(), "os_threads": os_threads()}
                row["peer_connection_alive"] = None if pc is None else pc() is not None
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            peer.stdin.close()
            await peer.wait()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.serve_churn", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/serve_churn.json"))
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0, help="how long each session sends")
    parser.add_argument("--backend", default="ort-cpu", help="ort-cpu (the shipped engine) or passthrough")
    parser.add_argument(
        "--arenas", default="server", help="glibc malloc arenas: a number, server (serve's cap) or default"
    )
    parser.add_argument("--no-auto-gc", action="store_true", help="Python's automatic collector off")
    args = parser.parse_args(argv)
    from stablesync.realtime.webrtc.heap import limit_arenas, server_arenas

    arenas = (
        None if args.arenas == "default" else server_arenas() if args.arenas == "server" else int(args.arenas)
    )
    capped = arenas is not None and limit_arenas(arenas)
    if args.no_auto_gc:
        gc.disable()
    rows = asyncio.run(churn(args.sessions, args.seconds, args.backend))
    rss = [row["rss_mb"] for row in rows]
    figures = {
        "backend": args.backend,
        "sessions": args.sessions,
        "seconds_per_session": args.seconds,
        "arenas": arenas if capped else "glibc's default",
        "automatic_gc": not args.no_auto_gc,
        "rss_first_mb": rss[0] if rss else None,
        "rss_last_mb": rss[-1] if rss else None,
        "per_session": rows,
        "samples": {"RSS after each session": rss},
        "samples_unit": "MB",
    }
    path = write_result(args.out, "serve_churn", figures)
    print(f"RSS {figures['rss_first_mb']} -> {figures['rss_last_mb']} MB over {len(rows)} sessions -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
