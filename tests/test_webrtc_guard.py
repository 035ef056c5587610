"""`stablesync serve` is no traffic reflector: remote ICE candidates are filtered before aiortc
sees them, requests are bounded in time and number, refusals are logged in one line.

Real sockets and real aiortc peers on loopback; in the test namespace (.ci/netns.sh) this
machine's addresses are 127.0.0.1 and 127.0.0.2, so 127.0.0.3 stands for "some other host".
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
from collections.abc import Iterator

import pytest

from stablesync.realtime.webrtc import PassthroughFactory, ServeConfig, SessionPipeline, running_server
from stablesync.realtime.webrtc.candidates import CandidatePolicy, filter_offer, peer_address
from stablesync.realtime.webrtc.client import post_offer
from tests.test_webrtc_server import _offer_sdp

ELSEWHERE = "127.0.0.3"  # on loopback, but not an address of any interface here


@pytest.fixture
def udp_listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((ELSEWHERE, 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def _packets(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            sock.recv(2048)
        except BlockingIOError:
            return count
        count += 1


def _with_candidates(sdp: str, lines: list[str]) -> str:
    """The offer with its own candidates replaced by `lines` in every m-section."""
    out = []
    for line in sdp.splitlines():
        if line.startswith(("a=candidate:", "a=end-of-candidates")):
            continue
        out.append(line)
        if line.startswith("m="):
            out += lines
    return "\r\n".join(out) + "\r\n"


def _hostile_candidates(port: int) -> list[str]:
    lines = [f"a=candidate:h{i} 1 udp 2130706431 {ELSEWHERE} {port + i} typ host" for i in range(20)]
    lines += [
        f"a=candidate:s1 1 udp 1694498815 {ELSEWHERE} {port} typ srflx raddr 0.0.0.0 rport 0",
        f"a=candidate:r1 1 udp 16777215 {ELSEWHERE} {port} typ relay raddr 0.0.0.0 rport 0",
        f"a=candidate:m1 1 udp 2130706431 {'a' * 8}-1234.local {port} typ host",
        f"a=candidate:t1 1 tcp 1518280447 {ELSEWHERE} {port} typ host tcptype passive",
    ]
    return lines


def _policy(**kwargs: object) -> CandidatePolicy:
    return CandidatePolicy(peer=peer_address("10.0.0.5"), **kwargs)  # type: ignore[arg-type]


def test_filter_keeps_the_peers_own_host_candidates_only() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n" + "\r\n".join(
        [
            "a=candidate:1 1 udp 2130706431 10.0.0.5 5000 typ host",
            "a=candidate:2 1 udp 2130706431 10.0.0.6 5000 typ host",
            "a=candidate:3 1 udp 2130706431 ::ffff:10.0.0.5 5001 typ host",
            "a=candidate:4 1 udp 1694498815 203.0.113.7 5000 typ srflx raddr 10.0.0.5 rport 5000",
            "a=candidate:5 1 udp 16777215 198.51.100.1 3478 typ relay raddr 203.0.113.7 rport 5000",
            "a=candidate:6 1 udp 2130706431 0b3f-aa.local 5000 typ host",
            "a=candidate:7 1 udp garbage",
            "a=end-of-candidates",
        ]
    )
    kept, report = filter_offer(sdp, _policy())
    assert report.accepted == 2 and "10.0.0.6" not in kept and "a=end-of-candidates" not in kept
    assert report.rejected == {
        "host not the peer's address": 1,
        "srflx without stun": 1,
        "relay without turn": 1,
        "mdns": 1,
        "malformed": 1,
    }
    _, with_stun = filter_offer(sdp, _policy(has_stun=True))
    assert with_stun.accepted == 3 and with_stun.rejected["relay without turn"] == 1
    _, with_turn = filter_offer(sdp, _policy(has_stun=True, has_turn=True, allow_mdns=True))
    assert with_turn.accepted == 5
    nat = _policy(allowed_networks=(ipaddress.ip_network("10.0.0.0/24"),))
    assert filter_offer(sdp, nat)[1].accepted == 3
    assert filter_offer(sdp, _policy(max_per_section=1))[1].rejected["over the per-section limit"] == 1
    clean = "\r\n".join(line for line in sdp.splitlines() if not line.startswith("a=candidate:")) + "\r\n"
    assert "a=end-of-candidates" in filter_offer(clean, _policy())[0]  # nothing dropped: kept


async def test_candidates_on_another_address_get_no_packet(
    udp_listener: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="stablesync.realtime.webrtc")
    port = udp_listener.getsockname()[1]
    offer = _with_candidates(await _offer_sdp(), _hostile_candidates(port))
    async with running_server(ServeConfig(port=0), PassthroughFactory()) as server:
        status, answer = await post_offer(server.url, offer)
        assert status == 200, answer
        (session,) = server.registry.sessions()
        report = session.stats.candidates
        assert report.accepted == 0
        # 3 m-sections (video, audio, data channel), each with all of the above
        assert report.rejected == {
            "host not the peer's address": 60,
            "srflx without stun": 3,
            "relay without turn": 3,
            "mdns": 3,
            "not udp": 3,
        }
        assert session.final_stats()["ice_candidates"]["rejected"] == 72
        await asyncio.sleep(3.0)  # aioice would have sent its first checks within milliseconds
        assert _packets(udp_listener) == 0
    assert any("0 candidate(s) kept, 72 dropped" in r.getMessage() for r in caplog.records)


async def test_a_peer_whose_candidates_were_all_dropped_still_connects(udp_listener: socket.socket) -> None:
    """Its connectivity checks come from its real address, which ICE then pairs (peer-reflexive):
    the filter stops the server from aiming at addresses, not peers from connecting."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    port = udp_listener.getsockname()[1]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendrecv")
    pc.createDataChannel("stats")
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = _with_candidates(pc.localDescription.sdp, _hostile_candidates(port)[:3])
        async with running_server(ServeConfig(port=0), PassthroughFactory()) as server:
            status, answer = await post_offer(server.url, offer)
            assert status == 200
            (session,) = server.registry.sessions()
            assert session.stats.candidates.accepted == 0
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
            for _ in range(100):
                if pc.connectionState == "connected" and session.pc.connectionState == "connected":
                    break
                await asyncio.sleep(0.1)
            assert pc.connectionState == session.pc.connectionState == "connected"
            assert _packets(udp_listener) == 0
    finally:
        await pc.close()


async def test_the_same_offer_reaches_an_allowed_network(udp_listener: socket.socket) -> None:
    """The control: allowed (`--allow-candidates`), the same candidates do get checks, so the
    zero above is the filter's doing."""
    port = udp_listener.getsockname()[1]
    offer = _with_candidates(await _offer_sdp(), _hostile_candidates(port)[:1])
    config = ServeConfig(port=0, allow_candidates=(f"{ELSEWHERE}/32",))
    async with running_server(config, PassthroughFactory()) as server:
        status, _ = await post_offer(server.url, offer)
        assert status == 200
        for _ in range(30):
            await asyncio.sleep(0.1)
            if _packets(udp_listener):
                break
        else:
            pytest.fail("no connectivity check reached the allowed candidate")


class SlowFactory(PassthroughFactory):
    """Passthrough whose pipelines take `delay_s` to open (a loaded engine, a stuck device)."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    async def open_session(self, session_id: str) -> SessionPipeline:
        await asyncio.sleep(self.delay_s)
        return await super().open_session(session_id)


async def test_an_answer_not_ready_in_time_is_503_and_frees_the_slot(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stablesync.realtime.webrtc")
    config = ServeConfig(port=0, max_sessions=1, handler_timeout_s=0.3)
    async with running_server(config, SlowFactory(delay_s=5.0)) as server:
        began = asyncio.get_running_loop().time()
        status, answer = await post_offer(server.url, await _offer_sdp())
        assert status == 503 and "no answer within 0.3 s" in answer["error"]
        assert asyncio.get_running_loop().time() - began < 2.0
        assert len(server.registry) == 0 and not server.registry.full
    assert any("POST /offer from 127.0.0.1: 503 server busy" in r.getMessage() for r in caplog.records)


async def _raw_request(
    port: int, head: bytes, body: bytes
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    await writer.drain()
    return reader, writer


def _post_head(length: int, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"POST /offer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def _no_traceback(records: list[logging.LogRecord]) -> None:
    assert not [r for r in records if r.exc_info], [r.getMessage() for r in records if r.exc_info]


async def test_a_stalled_body_gets_408_quickly(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    config = ServeConfig(port=0, body_timeout_s=0.5)
    async with running_server(config, PassthroughFactory()) as server:
        reader, writer = await _raw_request(server.port, _post_head(1000), b"x" * 100)
        began = asyncio.get_running_loop().time()
        reply = await asyncio.wait_for(reader.read(), timeout=5.0)  # read() returns once closed
        took_s = asyncio.get_running_loop().time() - began
        writer.close()
        assert reply.startswith(b"HTTP/1.1 408") and b"not received within 0.5 s" in reply
        assert took_s < 3.0  # answered at 0.5 s, closed after at most 1 s more of lingering
        assert server.connections.open == 0
    lines = [r.getMessage() for r in caplog.records if "408" in r.getMessage()]
    assert len(lines) == 1 and "from 127.0.0.1" in lines[0]
    _no_traceback(caplog.records)


async def test_a_dropped_upload_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_server(ServeConfig(port=0), PassthroughFactory()) as server:
        _, writer = await _raw_request(server.port, _post_head(5000), b'{"sdp": "v=0')
        await asyncio.sleep(0.2)
        writer.transport.abort()
        for _ in range(50):
            await asyncio.sleep(0.05)
            if server.connections.open == 0:
                break
        await asyncio.sleep(0.2)
        assert server.connections.open == 0
    ours = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    assert "from 127.0.0.1: client disconnected mid-body" in ours[0].getMessage()
    _no_traceback(caplog.records)


async def test_wrong_tokens_are_logged_and_slowed_down(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stablesync.realtime.webrtc")
    config = ServeConfig(port=0, token="correct-horse-battery", auth_backoff_s=0.4)
    async with running_server(config, PassthroughFactory()) as server:
        sdp = await _offer_sdp()
        status, answer = await post_offer(server.url, sdp, token="wrong-token-value")
        assert status == 401 and "token" in answer["error"]
        status, answer = await post_offer(server.url, sdp, token="correct-horse-battery")
        assert status == 429 and "retry in 1 s" in answer["error"]  # refused while backing off
        await asyncio.sleep(0.5)
        assert (await post_offer(server.url, sdp, token="wrong-token-value"))[0] == 401  # 2nd: 0.8 s
        await asyncio.sleep(0.5)
        assert (await post_offer(server.url, sdp, token="correct-horse-battery"))[0] == 429
        await asyncio.sleep(0.4)
        status, answer = await post_offer(server.url, sdp, token="correct-horse-battery")
        assert status == 200 and answer["type"] == "answer"
    refusals = [r.getMessage() for r in caplog.records if re.search(r": (401|429) ", r.getMessage())]
    assert len(refusals) == 4 and all("POST /offer from 127.0.0.1: " in m for m in refusals)
    assert "next offer accepted in 0.8 s" in refusals[2]  # the second wrong token in a row
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 4  # one line each
    assert "wrong-token-value" not in caplog.text  # the token itself is never logged


async def test_connections_past_the_cap_get_503_and_idle_ones_are_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stablesync.realtime.webrtc")
    config = ServeConfig(port=0, max_connections=2, header_timeout_s=1.0)
    async with running_server(config, PassthroughFactory()) as server:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await asyncio.sleep(0.1)
        assert server.connections.open == 2
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        reply = await asyncio.wait_for(reader.read(), timeout=5.0)
        writer.close()
        assert reply.startswith(b"HTTP/1.1 503") and json.loads(reply.split(b"\r\n\r\n", 1)[1])["error"]
        # the idle ones send nothing: closed after header_timeout_s, which frees their slots
        for idle_reader, _ in idle:
            assert await asyncio.wait_for(idle_reader.read(), timeout=5.0) == b""
        for _, idle_writer in idle:
            idle_writer.close()
        await asyncio.sleep(0.1)
        assert server.connections.open == 0
        status, _ = await post_offer(server.url, await _offer_sdp())
        assert status == 200
    assert any("connection from 127.0.0.1: 503" in r.getMessage() for r in caplog.records)
