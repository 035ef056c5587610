"""A closed session of `stablesync serve` is freed by the server itself (issue 21): its objects
sit in reference cycles (aiortc's peer connection among them), which the registry collects
after the close, so they do not wait for one of Python's rare full collections. Real aiortc
peers on loopback; the automatic collector is off, so only the server's own collection can
free them. And the C heap's arena cap that `serve` sets is one glibc takes."""

from __future__ import annotations

import asyncio
import ctypes
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from stablesync.benchmarks.webrtc_sessions import _clip
from stablesync.realtime.webrtc import PassthroughFactory, ServeConfig, running_server
from stablesync.realtime.webrtc.client import run_client
from tests.no_gc import no_cyclic_gc  # noqa: F401 (the fixture, by name)

SEND_S = 2.0
OPEN_TIMEOUT_S = 15.0
CLOSE_TIMEOUT_S = 15.0


@pytest.mark.usefixtures("no_cyclic_gc")
async def test_a_closed_sessions_peer_connection_is_freed_by_the_server() -> None:
    async with running_server(ServeConfig(port=0), PassthroughFactory()) as server:
        client = asyncio.ensure_future(run_client(server.url, _clip(), SEND_S, settle_s=0.5))
        deadline_s = asyncio.get_running_loop().time() + OPEN_TIMEOUT_S
        while not server.registry.sessions() and asyncio.get_running_loop().time() < deadline_s:
            await asyncio.sleep(0.05)
        sessions = server.registry.sessions()
        assert sessions, "the server opened no session"
        session_ref, pc_ref = weakref.ref(sessions[0]), weakref.ref(sessions[0].pc)
        del sessions
        result = await client
        assert result.error is None, result.error
        assert await server.registry.wait_empty(CLOSE_TIMEOUT_S), "the session did not close"
        await server.registry.wait_released()
        assert session_ref() is None
        assert pc_ref() is None, "the closed session's RTCPeerConnection is still alive"


ARENAS_SCRIPT = """
import ctypes, json, sys, tempfile, threading
from stablesync.realtime.webrtc.heap import limit_arenas
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.fopen.restype = ctypes.c_void_p
libc.free.argtypes = libc.fclose.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]

def arenas():  # glibc's own account: malloc_info's XML has one <heap> per arena
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return open(out.name).read().count("<heap nr=")

capped = limit_arenas(2) if sys.argv[1] == "capped" else False
before = arenas()
all_holding = threading.Barrier(12)
def hold():  # each thread mallocs while all the others hold a block too
    block = libc.malloc(4096)
    all_holding.wait()
    libc.free(block)
threads = [threading.Thread(target=hold) for _ in range(12)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"capped": capped, "before": before, "after": arenas()}))
"""


def _arenas(mode: str) -> dict[str, int]:
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", ARENAS_SCRIPT, mode], capture_output=True, text=True, cwd=root, check=True
    )
    figures: dict[str, int] = json.loads(out.stdout)
    return figures


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "malloc_info"),
    reason="mallopt and malloc_info are glibc's",
)
def test_the_arena_cap_holds_for_threads_started_after_it() -> None:
    # in processes of their own (the cap lasts as long as the process): 12 threads that each
    # hold a malloc'd block at once get arenas of their own, unless capped
    free = _arenas("free")
    assert free["after"] >= free["before"] + 8, free  # the check can see arenas being made
    capped = _arenas("capped")
    assert capped["capped"], "mallopt refused the cap"
    assert capped["after"] <= max(capped["before"], 2), capped
