"""What one HTTP client may hold: a cap on open connections, and a back-off on wrong tokens.

`ConnectionLimiter` is the listening socket's protocol factory: it hands each accepted
connection to aiohttp's handler while fewer than `max_connections` are open, and past that
answers 503 itself and closes (before any byte of the request is read, so a flood of idle
connections cannot hold the server's descriptors). `AuthBackoff` refuses an address for
`base_s * 2**(n-1)` (at most `max_s`) after its n-th wrong token in a row.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
TRACKED_ADDRESSES = 4096  # AuthBackoff forgets the least recently failed beyond this
REFUSAL_LOG_PERIOD_S = 1.0


def _peer(transport: asyncio.BaseTransport) -> str:
    peername = transport.get_extra_info("peername")
    return str(peername[0]) if isinstance(peername, tuple) and peername else "?"


def http_error(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Counted(asyncio.Protocol):
    """aiohttp's handler for one connection, with the limiter told when the connection ends."""

    def __init__(self, inner: asyncio.Protocol, on_lost: Callable[[], None]) -> None:
        self._inner, self._on_lost = inner, on_lost

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost()
        self._inner.connection_lost(exc)


class _Refusal(asyncio.Protocol):
    def __init__(self, limiter: ConnectionLimiter) -> None:
        self._limiter = limiter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._limiter.log_refusal(_peer(transport))
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self._limiter.refusal)
        transport.close()


class ConnectionLimiter:
    def __init__(
        self,
        make_handler: Callable[[], asyncio.Protocol],
        max_connections: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_handler, self._clock = make_handler, clock
        self.max_connections = max_connections
        self.open = 0
        self.refused = 0
        self.refusal = http_error(
            503, "Service Unavailable", f"server busy: {max_connections} connections open; try again later"
        )
        self._last_log_s = float("-inf")
        self._unlogged = 0

    def __call__(self) -> asyncio.BaseProtocol:
        if self.open >= self.max_connections:
            self.refused += 1
            return _Refusal(self)
        self.open += 1
        return _Counted(self._make_handler(), self._release)

    def _release(self) -> None:
        self.open -= 1

    def log_refusal(self, peer: str) -> None:
        """One line per refusal, at most one a second (the others counted in the next line)."""
        now_s = self._clock()
        if now_s - self._last_log_s < REFUSAL_LOG_PERIOD_S:
            self._unlogged += 1
            return
        more = f" (+{self._unlogged} more refused since the last line)" if self._unlogged else ""
        log.warning("connection from %s: 503, %d connections open (the limit)%s", peer, self.open, more)
        self._last_log_s, self._unlogged = now_s, 0


class AuthBackoff:
    def __init__(self, base_s: float, max_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._base_s, self._max_s, self._clock = base_s, max_s, clock
        self._failures: collections.OrderedDict[str, tuple[int, float]] = collections.OrderedDict()

    def blocked_for_s(self, address: str) -> float:
        """How long `address` is still refused without its token being looked at (0: not)."""
        entry = self._failures.get(address)
        return 0.0 if entry is None else max(0.0, entry[1] - self._clock())

    def failed(self, address: str) -> float:
        """Records a wrong token; returns how long the address is now refused."""
        now_s = self._clock()
        count, until_s = self._failures.pop(address, (0, now_s))
        if now_s - until_s > self._max_s:
            count = 0  # quiet for long enough: start again
        count += 1
        block_s = min(self._base_s * 2 ** (count - 1), self._max_s)
        self._failures[address] = (count, now_s + block_s)
        while len(self._failures) > TRACKED_ADDRESSES:
            self._failures.popitem(last=False)
        return block_s

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)

    def __len__(self) -> int:
        return len(self._failures)
