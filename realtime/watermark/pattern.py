"""The watermark's patterns: a periodic tile of band-limited noise, keyed by the project's key.

The tile is `tile_px` square at the canonical frame height (480 rows; other frame sizes get it
scaled by height / 480, so a picture shrunk by a call keeps its pattern in proportion). Its
spectrum lives in a ring of spatial frequencies, `min_cycles` to `max_cycles` per tile (a
wavelength of about 6 to 20 pixels at 480 rows: coarse enough to survive video codecs at low
bit rates and a 0.5x rescale, fine enough to stay invisible at about 1.5 grey levels). The
ring's frequency bins are split at random, by the key, into disjoint sets: one for the sync
pattern (found by correlation, which gives presence and the tile's offset) and one per
payload bit (its sign carries the bit), so the patterns are exactly orthogonal.
Because the pattern repeats with the tile's period, any crop of a marked frame still holds
whole periods of it, and the period itself (found from the frame's autocorrelation) gives
the rescale factor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from stablesync.realtime.watermark.payload import PAYLOAD_BITS

FloatTile = NDArray[np.float32]
ComplexTile = NDArray[np.complex64]


@dataclass(frozen=True)
class PatternSpec:
    key: int = 0x5AB1E5C  # the project's fixed key: every stablesync build marks alike
    tile_px: int = 128  # period of the pattern at the canonical height
    canonical_height_px: int = 480
    min_scale: float = 0.75  # smaller frames keep the pattern at this scale (codecs blur finer ones)
    min_cycles: float = 6.5  # ring of spatial frequencies, cycles per tile
    max_cycles: float = 22.0
    sync_share: float = 0.5  # share of the pattern's energy (and bins) given to the sync part
    payload_bits: int = PAYLOAD_BITS


@dataclass
class PatternBank:
    """The spectra and tiles of one `PatternSpec` (computed once, a few milliseconds)."""

    spec: PatternSpec = field(default_factory=PatternSpec)

    def __post_init__(self) -> None:
        p = self.spec.tile_px
        ky = np.fft.fftfreq(p, 1.0 / p)[:, None]
        kx = np.arange(p // 2 + 1, dtype=np.float64)[None, :]
        radius = np.sqrt(ky**2 + kx**2)
        ring = (radius >= self.spec.min_cycles) & (radius <= self.spec.max_cycles)
        ring &= (kx > 0) & (kx < p // 2)  # one bin of each conjugate pair: a real tile
        bins = np.argwhere(ring)
        rng = np.random.default_rng(self.spec.key)
        bins = bins[rng.permutation(len(bins))]
        phases = rng.uniform(0.0, 2.0 * np.pi, len(bins))
        n_sync = round(len(bins) * self.spec.sync_share)
        self.band: NDArray[np.bool_] = ring
        self.sync_spectrum: ComplexTile = self._spectrum(bins[:n_sync], phases[:n_sync])
        rest, rest_phases = bins[n_sync:], phases[n_sync:]
        self.bit_spectra: list[ComplexTile] = [
            self._spectrum(rest[k :: self.spec.payload_bits], rest_phases[k :: self.spec.payload_bits])
            for k in range(self.spec.payload_bits)
        ]
        self.sync_tile = self._unit_tile(self.sync_spectrum)
        self.bit_tiles = np.stack([self._unit_tile(s) for s in self.bit_spectra])

    def _spectrum(self, bins: NDArray[np.intp], phases: NDArray[np.float64]) -> ComplexTile:
        p = self.spec.tile_px
        spectrum = np.zeros((p, p // 2 + 1), np.complex64)
        spectrum[bins[:, 0], bins[:, 1]] = np.exp(1j * phases)
        return spectrum

    def _unit_tile(self, spectrum: ComplexTile) -> FloatTile:
        tile = np.fft.irfft2(spectrum, s=(self.spec.tile_px, self.spec.tile_px))
        return (tile / np.sqrt(np.mean(tile**2))).astype(np.float32)

    def tile(self, bits: NDArray[np.uint8]) -> FloatTile:
        """The tile that carries `bits` (0/1, one per payload bit), unit RMS."""
        signs = bits.astype(np.float32) * 2.0 - 1.0
        payload = np.tensordot(signs, self.bit_tiles, axes=1)
        payload /= np.sqrt(np.mean(payload**2))
        share = self.spec.sync_share
        tile = np.sqrt(share) * self.sync_tile + np.sqrt(1.0 - share) * payload
        return (tile / np.sqrt(np.mean(tile**2))).astype(np.float32)
