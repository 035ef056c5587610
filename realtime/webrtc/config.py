"""What `stablesync serve` is configured with: one frozen dataclass, checked once."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

from stablesync.errors import UserError

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

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: expected 0..65535")
        if self.max_sessions < 1:
            raise UserError(f"--max-sessions {self.max_sessions}: expected at least 1")
        if self.token is not None and len(self.token) < 8:
            raise UserError("--token: expected at least 8 characters")
        if not self.is_loopback and not self.token:
            raise UserError(
                f"--host {self.host}: serving beyond this machine needs --token T "
                "(the page sends it; offers without it are refused)"
            )

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False
