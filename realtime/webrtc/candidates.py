"""Which of an offer's ICE candidates the server may send connectivity checks to.

aioice pairs every remote candidate whose address parses and sends STUN checks to each, so an
unfiltered offer can aim the server's UDP at any host and port. `filter_offer` rewrites the
offer's SDP before it reaches aiortc, keeping only:

- `host` candidates on the address the offer came from, on one of this machine's own addresses
  when the offer came from loopback (a peer on this machine), or inside `--allow-candidates`;
- `srflx`/`prflx` candidates only when the server has a STUN or TURN server, `relay` only with a
  TURN server (without them the server has no use for those paths);
- no `.local` (mDNS) names unless allowed, no TCP candidates (aiortc speaks ICE over UDP);
- at most `max_per_section` candidates per m-section.

Every dropped candidate is counted under its reason (`CandidateReport`). Where one was dropped,
the section's `a=end-of-candidates` goes too: a peer whose address the filter did not know (NAT,
a proxy) can still connect, since ICE then pairs the address its own authenticated checks come
from (peer-reflexive), and the server only ever answers there.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
from collections.abc import Iterable

import ifaddr  # what aioice itself lists the host's addresses with

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
CANDIDATE_PREFIX = "a=candidate:"
END_OF_CANDIDATES = "a=end-of-candidates"
MDNS_SUFFIX = ".local"


@dataclasses.dataclass(frozen=True)
class CandidatePolicy:
    peer: IpAddress | None  # where the offer came from (None: unknown, no host candidate passes)
    allowed_networks: tuple[IpNetwork, ...] = ()
    local_addresses: frozenset[IpAddress] = frozenset()  # this machine's, for loopback peers
    allow_mdns: bool = False
    has_stun: bool = False
    has_turn: bool = False
    max_per_section: int = 6

    def rejection(self, line: str) -> str | None:
        """None when the candidate may be used, else the reason it is dropped."""
        fields = line[len(CANDIDATE_PREFIX) :].split()
        if len(fields) < 8 or fields[6] != "typ" or not fields[5].isdigit():
            return "malformed"
        transport, host, kind = fields[2].lower(), fields[4], fields[7].lower()
        if transport != "udp":
            return "not udp"
        if host.lower().endswith(MDNS_SUFFIX):
            return None if self.allow_mdns and kind == "host" else "mdns"
        try:
            address = _normalised(ipaddress.ip_address(host))
        except ValueError:
            return "not an ip address"
        if kind == "host":
            return None if self._host_allowed(address) else "host not the peer's address"
        if kind in ("srflx", "prflx"):
            return None if self.has_stun or self.has_turn else "srflx without stun"
        if kind == "relay":
            return None if self.has_turn else "relay without turn"
        return "unknown type"

    def _host_allowed(self, address: IpAddress) -> bool:
        if address == self.peer or any(address in net for net in self.allowed_networks):
            return True
        return self.peer is not None and self.peer.is_loopback and address in self.local_addresses


@dataclasses.dataclass
class CandidateReport:
    accepted: int = 0
    rejected: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    def as_dict(self) -> dict[str, object]:
        return {"accepted": self.accepted, "rejected": self.rejected_total, "reasons": dict(self.rejected)}

    def summary(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in self.rejected.most_common())
        return f"{self.accepted} candidate(s) kept" + (
            f", {self.rejected_total} dropped ({reasons})" if reasons else ""
        )


def filter_offer(sdp: str, policy: CandidatePolicy) -> tuple[str, CandidateReport]:
    """The offer without the candidates `policy` rejects, and what was kept and dropped."""
    report = CandidateReport()
    out: list[str] = []
    in_media, kept_here, dropped_here = False, 0, 0
    for line in sdp.splitlines():
        if line.startswith("m="):
            in_media, kept_here, dropped_here = True, 0, 0
        elif line.startswith(CANDIDATE_PREFIX):
            reason = policy.rejection(line) if in_media else "outside a media section"
            if reason is None and kept_here >= policy.max_per_section:
                reason = "over the per-section limit"
            if reason is not None:
                report.rejected[reason] += 1
                dropped_here += 1
                continue
            kept_here += 1
            report.accepted += 1
        elif line.startswith(END_OF_CANDIDATES) and dropped_here:
            continue  # leaves ICE open to the peer's real address, learnt from its own checks
        out.append(line)
    return "\r\n".join(out) + "\r\n", report


def parse_networks(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or one address); ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r}: expected an address or CIDR block like 10.0.0.0/8") from None
    return tuple(networks)


def peer_address(remote: str | None) -> IpAddress | None:
    """The HTTP peer's address as an IP (IPv4-mapped IPv6 as IPv4), None when it is not one."""
    if not remote:
        return None
    try:
        return _normalised(ipaddress.ip_address(remote.split("%", 1)[0]))
    except ValueError:
        return None


def host_addresses() -> frozenset[IpAddress]:
    """Every address on this machine's interfaces, loopback included."""
    found: set[IpAddress] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            address = peer_address(text)
            if address is not None:
                found.add(address)
    return frozenset(found)


def _normalised(address: IpAddress) -> IpAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
