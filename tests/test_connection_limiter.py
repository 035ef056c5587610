"""`serve`'s connection cap (`stablesync.realtime.webrtc.limits.ConnectionLimiter`): connections
over the cap are answered 503 and closed, and the refusals are logged one line at most each
second, the ones in between counted in the next line (a flood cannot flood the log)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from stablesync.realtime.webrtc.limits import REFUSAL_LOG_PERIOD_S, ConnectionLimiter


class _Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


class _Transport(asyncio.WriteTransport):
    def __init__(self) -> None:
        super().__init__()
        self.written, self.closed = b"", False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return ("192.0.2.7", 4000) if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True


def test_refusals_answer_503_and_log_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    limiter = ConnectionLimiter(asyncio.Protocol, max_connections=2, clock=clock)
    for _ in range(2):
        limiter()
    assert limiter.open == 2
    caplog.set_level(logging.WARNING, logger="stablesync.realtime.webrtc.limits")
    transports = []
    for _ in range(5):  # five refusals within one period: one line
        transport = _Transport()
        limiter().connection_made(transport)
        transports.append(transport)
    assert all(t.closed and t.written.startswith(b"HTTP/1.1 503") for t in transports)
    assert limiter.refused == 5
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "192.0.2.7" in lines[0] and "503" in lines[0], lines
    clock.now_s += REFUSAL_LOG_PERIOD_S  # the next refusal is logged with the count in between
    limiter().connection_made(_Transport())
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "+4 more refused" in lines[1], lines
