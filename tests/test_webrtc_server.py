"""`stablesync serve`'s HTTP side with real peers: offers, bad input, limits, tokens, shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from stablesync.errors import UserError
from stablesync.realtime.webrtc import PassthroughFactory, ServeConfig, running_server
from stablesync.realtime.webrtc.client import post_offer, run_client
from stablesync.realtime.webrtc.clip import synthetic_clip

REPO = Path(__file__).resolve().parents[1]


async def _offer_sdp() -> str:
    """A real browser-like offer (video + audio + data channel) from an aiortc peer."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendrecv")
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel("stats")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return str(sdp)


async def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(url + "offer", data=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


def test_config_is_safe_by_default() -> None:
    assert ServeConfig().host == "127.0.0.1"
    with pytest.raises(UserError, match="--token"):
        ServeConfig(host="0.0.0.0")
    with pytest.raises(UserError, match="at least 8"):
        ServeConfig(host="0.0.0.0", token="short")
    assert not ServeConfig(host="0.0.0.0", token="a-long-secret").is_loopback
    with pytest.raises(UserError, match="--max-sessions"):
        ServeConfig(max_sessions=0)


def test_spares_are_checked_against_the_sessions_served() -> None:
    from stablesync.realtime.cli.serve import build_parser, spares_of

    parser = build_parser("serve")
    assert spares_of(parser.parse_args([])) == 1
    assert spares_of(parser.parse_args(["--spares", "0"])) == 0
    assert spares_of(parser.parse_args(["--spares", "6", "--max-sessions", "6"])) == 6
    with pytest.raises(UserError, match=r"--spares 5: expected 0 to --max-sessions \(4\)"):
        spares_of(parser.parse_args(["--spares", "5"]))
    with pytest.raises(UserError, match="--spares -1"):
        spares_of(parser.parse_args(["--spares", "-1"]))


async def test_page_and_status_are_served() -> None:
    async with (
        running_server(ServeConfig(port=0), PassthroughFactory()) as server,
        aiohttp.ClientSession() as http,
    ):
        async with http.get(server.url) as r:
            page = await r.text()
            assert r.status == 200 and "app.js" in page and 'id="g2g"' in page
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
        async with http.get(server.url + "app.js") as r:
            assert r.status == 200 and "createDataChannel" in await r.text()
        async with http.get(server.url + "status") as r:
            assert await r.json() == {
                "sessions": 0,
                "max_sessions": 4,
                "mode": "passthrough",
                "token_required": False,
            }
        async with http.get(server.url + "sample.webm") as r:
            assert r.status == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "expected JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"sdp": "v=0\r\n", "type": "answer"}).encode(), "type: expected 'offer'"),
        (json.dumps({"type": "offer"}).encode(), "sdp: expected"),
        (json.dumps({"sdp": "hello", "type": "offer"}).encode(), "sdp: expected"),
        (b"\xff\xfe\x00garbage", "expected JSON"),
    ],
)
async def test_malformed_offers_get_400_with_a_message(body: bytes, message: str) -> None:
    async with running_server(ServeConfig(port=0), PassthroughFactory()) as server:
        status, answer = await _post(server.url, body)
        assert status == 400
        assert message in answer["error"]
        assert len(server.registry) == 0


async def test_unusable_sdp_gets_400_and_frees_its_slot() -> None:
    garbage_sdp = (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=nonsense\r\n"
    )
    async with running_server(ServeConfig(port=0, max_sessions=1), PassthroughFactory()) as server:
        for sdp in (garbage_sdp, "v=0\r\n"):
            status, answer = await _post(server.url, json.dumps({"sdp": sdp, "type": "offer"}).encode())
            assert status == 400, answer
            assert answer["error"].startswith("sdp: cannot use this offer")
        assert len(server.registry) == 0
        status, answer = await post_offer(server.url, await _offer_sdp())  # the slot is free again
        assert status == 200 and answer["type"] == "answer" and "m=video" in answer["sdp"]


async def test_oversized_body_is_refused() -> None:
    async with running_server(ServeConfig(port=0, max_body_bytes=4096), PassthroughFactory()) as server:
        big = json.dumps({"sdp": "v=0\r\n" + "a=x\r\n" * 10_000, "type": "offer"}).encode()
        status, answer = await _post(server.url, big)
        assert status == 413 and "larger than 4096" in answer["error"]


async def test_token_is_checked_on_offer() -> None:
    config = ServeConfig(
        port=0, token="correct-horse-battery", auth_backoff_s=0.0
    )  # back-off: test_webrtc_guard
    async with running_server(config, PassthroughFactory()) as server:
        sdp = await _offer_sdp()
        assert (await post_offer(server.url, sdp))[0] == 401
        status, answer = await post_offer(server.url, sdp, token="wrong-token-value")
        assert status == 401 and "token" in answer["error"]
        status, answer = await post_offer(server.url, sdp, token="correct-horse-battery")
        assert status == 200 and answer["type"] == "answer"


async def test_more_clients_than_max_sessions_get_503() -> None:
    async with running_server(ServeConfig(port=0, max_sessions=1), PassthroughFactory()) as server:
        first = asyncio.ensure_future(run_client(server.url, synthetic_clip(2.0), 3.0, settle_s=0.5))
        for _ in range(100):
            if len(server.registry) == 1:
                break
            await asyncio.sleep(0.05)
        status, answer = await post_offer(server.url, await _offer_sdp())
        assert status == 503 and "server full" in answer["error"]
        result = await first
        assert result.error is None and result.video_frames > 0  # the first one was not disturbed
        assert await server.registry.wait_empty(5.0)  # its slot is freed when it leaves
        assert (await post_offer(server.url, await _offer_sdp()))[0] == 200


def _status(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "status", timeout=5) as r:
        value: dict[str, int] = json.loads(r.read())
        return value


@pytest.mark.slow
def test_sigterm_closes_peers_and_exits_within_5_s(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "stablesync.cli", "serve", "--port", "0", "--backend", "passthrough"]
    server = subprocess.Popen(
        [*cmd, "--stats-json", str(tmp_path / "serve.json")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert server.stdout is not None
        line = ""
        for line in server.stdout:
            if "open http" in line:
                break
        url = line.split("open ", 1)[1].split()[0]
        client = subprocess.Popen(
            [sys.executable, "-m", "stablesync.realtime.webrtc.client", url, "--seconds", "60"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
        )
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if _status(url)["sessions"] == 1:
                    break
                time.sleep(0.3)
            else:
                pytest.fail("the client never connected")
            time.sleep(2.0)  # media flowing
            began = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=10)
            assert time.monotonic() - began < 5.0
            assert code == 0
            report = json.loads((tmp_path / "serve.json").read_text())
            (session,) = report["sessions"]
            assert session["close_reason"] == "server shutting down" and session["frames_out"] > 0
        finally:
            client.kill()
            client.wait()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_serve_never_imports_torch(cpu_rt_export: Path) -> None:
    code = (
        "import sys, stablesync.realtime.webrtc.lipsync, stablesync.realtime.webrtc.sample\n"
        "import stablesync.realtime.webrtc.client\n"
        "from stablesync.realtime.cli.serve import build_parser, open_pipelines\n"
        f"argv = ['--backend', 'ort-cpu', '--weights', r'{cpu_rt_export}']\n"
        "args = build_parser('serve').parse_args(argv)\n"
        "assert open_pipelines(args).backend == 'ort-cpu'\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)
