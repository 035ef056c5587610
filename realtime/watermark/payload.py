"""The watermark's payload: 64 bits = format version, tool version, per-run id and a CRC.

Layout, most significant bit first: format version (4 bits), tool version major, minor and
patch (4 bits each, values above 15 stored as 15), the run id (32 bits, random per run, also
written to the run's stats), then a CRC-16/CCITT of those 48 bits. A decoded bit string
whose CRC does not match is "unreadable" rather than a wrong payload.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FORMAT_VERSION = 1
PAYLOAD_BITS = 64
_INFO_BITS = 48
_CRC_POLY = 0x1021


def crc16_ccitt(value: int, n_bits: int) -> int:
    """CRC-16/CCITT (polynomial 0x1021, initial 0xFFFF) of the `n_bits` low bits of `value`."""
    crc = 0xFFFF
    for i in range(n_bits - 1, -1, -1):
        top = ((crc >> 15) & 1) ^ ((value >> i) & 1)
        crc = (crc << 1) & 0xFFFF
        if top:
            crc ^= _CRC_POLY
    return crc


def parse_version(text: str) -> tuple[int, int, int]:
    """'1.2.3' (anything after the numbers ignored) -> (1, 2, 3); missing parts are 0."""
    numbers = [int(n) for n in re.findall(r"\d+", text)[:3]]
    numbers += [0] * (3 - len(numbers))
    return numbers[0], numbers[1], numbers[2]


@dataclass(frozen=True)
class Payload:
    run_id: int  # 32 bits
    tool_version: tuple[int, int, int]  # (major, minor, patch), each stored in 4 bits
    format_version: int = FORMAT_VERSION

    @property
    def run_id_hex(self) -> str:
        return f"{self.run_id:08x}"

    @property
    def tool_version_text(self) -> str:
        return ".".join(str(n) for n in self.tool_version)

    def to_int(self) -> int:
        major, minor, patch = (min(max(n, 0), 15) for n in self.tool_version)
        info = (self.format_version & 0xF) << 44 | major << 40 | minor << 36 | patch << 32
        info |= self.run_id & 0xFFFF_FFFF
        return info << 16 | crc16_ccitt(info, _INFO_BITS)

    def to_bits(self) -> NDArray[np.uint8]:
        """The 64 bits, most significant first, as 0/1."""
        value = self.to_int()
        return np.array([(value >> (PAYLOAD_BITS - 1 - i)) & 1 for i in range(PAYLOAD_BITS)], np.uint8)

    @classmethod
    def from_bits(cls, bits: NDArray[np.uint8] | list[int]) -> Payload | None:
        """The payload of 64 decoded bits, or None when their CRC does not match."""
        values = [int(b) for b in bits]
        if len(values) != PAYLOAD_BITS:
            raise ValueError(f"expected {PAYLOAD_BITS} bits, got {len(values)}")
        value = 0
        for bit in values:
            value = value << 1 | (bit & 1)
        info, crc = value >> 16, value & 0xFFFF
        if crc16_ccitt(info, _INFO_BITS) != crc:
            return None
        version = ((info >> 40) & 0xF, (info >> 36) & 0xF, (info >> 32) & 0xF)
        return cls(run_id=info & 0xFFFF_FFFF, tool_version=version, format_version=info >> 44)

    @classmethod
    def repair(cls, soft: NDArray[np.float64], candidates: int = 10, flips: int = 2) -> Payload | None:
        """The payload of soft bit decisions (sign = bit, size = how sure): the hard decisions,
        else the first that passes the CRC after flipping up to `flips` of the `candidates`
        least sure bits (56 tries for 10 and 2; a wrong payload passes the CRC-16 with a chance
        of about 56 / 65536, and only ever on a marked input)."""
        bits = (soft > 0).astype(np.uint8)
        unsure = np.argsort(np.abs(soft))[:candidates]
        for n in range(flips + 1):
            for chosen in itertools.combinations(unsure, n):
                trial = bits.copy()
                trial[list(chosen)] ^= 1
                payload = cls.from_bits(trial)
                if payload is not None:
                    return payload
        return None
