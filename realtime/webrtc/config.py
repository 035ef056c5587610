"""What `stablesync serve` is configured with: one frozen dataclass, checked once."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from stablesync.errors import UserError
from stablesync.realtime.webrtc.candidates import IpNetwork, parse_networks

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required when host is not a loopback address
    max_sessions: int = 4
    backend: str = "auto"
    max_body_bytes: int = 64 * 1024  # an SDP offer is a few KiB
    connect_timeout_s: float = 15.0  # a peer that never connects is dropped
    idle_timeout_s: float = 5.0  # a connected peer that sends no media for this long is dropped
    shutdown_timeout_s: float = 3.0  # closing every peer connection on SIGTERM/Ctrl-C
    sample_path: Path | None = None  # a WebM served at /sample.webm (the page's ?source=sample)
    # ICE: which remote candidates are used (candidates.py) and the STUN/TURN servers, if any
    allow_candidates: tuple[str, ...] = ()  # CIDR blocks whose host candidates are used too
    allow_mdns: bool = False  # use `.local` candidates (resolved by multicast DNS on our network)
    max_candidates_per_section: int = 6
    ice_servers: tuple[str, ...] = ()  # "stun:HOST:PORT", "turn:HOST:PORT?transport=udp"
    turn_username: str | None = None
    turn_password: str | None = None
    # HTTP: bounds on what one client can hold
    max_connections: int = 64  # concurrent HTTP connections; past it: 503 and closed
    header_timeout_s: float = 10.0  # a connection with no complete request by then is closed
    body_timeout_s: float = 10.0  # the offer's body must arrive within this (else 408)
    handler_timeout_s: float = 15.0  # opening the pipeline + negotiating the answer (else 503)
    auth_backoff_s: float = 1.0  # after the n-th wrong token in a row: refused for 2**(n-1) x this
    auth_backoff_max_s: float = 60.0
    # per-session profiles (profiles.py): a profile's engine is closed this long after its last session
    profile_idle_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: expected 0..65535")
        if self.max_sessions < 1:
            raise UserError(f"--max-sessions {self.max_sessions}: expected at least 1")
        if self.token is not None and len(self.token) < 8:
            raise UserError("--token: expected at least 8 characters")
        for name in ("max_connections", "max_candidates_per_section"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} {getattr(self, name)}: expected at least 1")
        if not self.profile_idle_s >= 0:
            raise UserError(f"profile_idle_s {self.profile_idle_s}: expected 0 or more seconds")
        try:
            parse_networks(self.allow_candidates)
        except ValueError as exc:
            raise UserError(f"--allow-candidates {exc}") from None
        for url in self.ice_servers:
            if url.split(":", 1)[0] not in ("stun", "turn", "turns"):
                raise UserError(f"--ice-server {url}: expected a stun: or turn: URL")
        if self.has_turn and not (self.turn_username and self.turn_password):
            raise UserError("--ice-server turn:...: needs --turn-credentials USER:PASSWORD")
        if not self.is_loopback and not self.token:
            raise UserError(
                f"--host {self.host}: serving beyond this machine needs --token T "
                "(the page sends it; offers without it are refused)"
            )

    @property
    def allowed_networks(self) -> tuple[IpNetwork, ...]:
        return parse_networks(self.allow_candidates)

    @property
    def has_stun(self) -> bool:
        return any(url.startswith("stun") for url in self.ice_servers)

    @property
    def has_turn(self) -> bool:
        return any(url.startswith("turn") for url in self.ice_servers)

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
