"""Detection: find the pattern's period (the rescale), fold the frames onto one tile, correlate.

1. Period: the frames' high-passed luma is autocorrelated (power spectra summed over up to
   `max_period_frames` frames, whitened, one inverse FFT); a pattern repeating every T pixels
   puts peaks at lags (T, 0), (0, T), (T, T) and (T, -T). The lags whose four values sum
   highest are candidates (to a fraction of a pixel), with the periods the frame size suggests
   (a whole-frame rescale keeps the period in proportion to the height; a crop of a common
   camera size keeps it in pixels): after a codec the autocorrelation often loses the period
   while the folded correlation below still finds the mark. Each candidate is tried on the
   whole clip's frames (steps 2 and 3), the best refined in steps down to 0.2 %. T / tile_px is
   the scale.
2. Fold: every frame is high-passed, resampled by fold_px / T and summed modulo the period onto
   one fold_px square (all tiles of all frames add up coherently; the picture does not). The
   fold is linear, so the frames of each second are added up first and their sum folded once.
3. Correlate: the folded tile's spectrum, whitened (phase only) inside the pattern's ring, is
   correlated with the sync pattern over every cyclic offset. The peak's height in standard
   deviations of the correlation surface is the score z; a crop only moves the peak.
4. Payload: at the peak's offset (to a fraction of a pixel), each bit's sign is that of the
   correlation with its own frequency bins; the 64 bits are the payload if their CRC holds
   (or holds after flipping up to two of the least sure bits).
Videos are analysed per second (the same period for all) and as a whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.realtime.watermark.config import DetectConfig
from stablesync.realtime.watermark.pattern import PatternBank, PatternSpec
from stablesync.realtime.watermark.payload import Payload
from stablesync.realtime.watermark.period import PeriodEstimator

Luma = NDArray[np.uint8]
FloatArray = NDArray[np.float32]
FrameSource = Callable[[], Iterable[tuple[float, Luma]]]  # (time_s, luma) of every frame, in order


@dataclass(frozen=True)
class Score:
    z: float  # sync peak height in standard deviations of the correlation surface
    marked: bool
    confidence: float  # 1 - the chance an unmarked input scores this high (Gaussian bound)
    offset_px: tuple[float, float]  # where the tile starts in the folded frame (rows, cols)
    bits: NDArray[np.uint8]
    payload: Payload | None


@dataclass(frozen=True)
class Segment:
    start_s: float
    frames: int
    z: float
    marked: bool


@dataclass
class Detection:
    frames: int
    period_px: float  # the pattern's period in the input's pixels (0 when none was found)
    scale: float  # period / the period at the canonical height
    overall: Score | None
    segments: list[Segment] = field(default_factory=list)

    @property
    def marked(self) -> bool:
        return self.overall is not None and self.overall.marked


def false_positive_bound(z: float, offsets: int) -> float:
    """Chance that the largest of `offsets` standard normal values exceeds z (union bound)."""
    return min(1.0, offsets * 0.5 * math.erfc(z / math.sqrt(2.0)))


class FrameSum:
    """Frames added up in float32, one sum per frame size (a video may change size)."""

    def __init__(self) -> None:
        self.frames = 0
        self.sums: dict[tuple[int, ...], FloatArray] = {}

    def add(self, luma: Luma) -> None:
        total = self.sums.get(luma.shape)
        if total is None:
            self.sums[luma.shape] = luma.astype(np.float32)
        else:
            cv2.accumulate(luma, total)
        self.frames += 1

    @classmethod
    def of(cls, parts: Iterable[FrameSum]) -> FrameSum:
        """The frames of every part added up together."""
        total = cls()
        for part in parts:
            for shape, frames in part.sums.items():
                if shape in total.sums:
                    total.sums[shape] += frames
                else:
                    total.sums[shape] = frames.copy()
            total.frames += part.frames
        return total


class Detector:
    def __init__(self, cfg: DetectConfig | None = None, spec: PatternSpec | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        self.spec = spec or PatternSpec()
        self.bank = PatternBank(self.spec)

    def detect(self, source: FrameSource) -> Detection:
        """One pass over `source`: every frame is added into its segment's sum, the first frames
        also give the period's candidates; the candidates are tried on the whole clip (the
        segments' sums added up), then each segment's sum is folded once and scored, and all
        together.

        Folding is linear (float conversion, box high-pass, blur, resampling, summing modulo the
        period), so folding a sum of frames is exactly folding each frame and adding the tiles:
        a 10-s clip is folded once per second and once per candidate period, not once per frame.
        The candidates are tried on the whole clip, not its first frames: over WebRTC those are
        the encoder's first, weakest second, where a wrong period can fold best."""
        estimator = PeriodEstimator(self.cfg)
        sums: list[tuple[float, FrameSum]] = []  # (segment start, its frames added up)
        for index, (time_s, luma) in enumerate(source()):
            if index % self.cfg.period_stride == 0 and estimator.frames < self.cfg.max_period_frames:
                estimator.add(luma)
            start_s = math.floor(time_s / self.cfg.segment_s) * self.cfg.segment_s
            if not sums or sums[-1][0] != start_s:
                sums.append((start_s, FrameSum()))
            sums[-1][1].add(luma)
        whole = FrameSum.of(segment for _, segment in sums)
        if not whole.frames:
            return Detection(frames=0, period_px=0.0, scale=0.0, overall=None)
        first_shape = next(iter(whole.sums))
        candidates = estimator.candidates() + self.size_periods(*first_shape)
        period, tries = self.choose_period(whole, candidates)
        folds = [(start, segment.frames, self.fold_sum(segment, period)) for start, segment in sums]
        total = np.sum([tile for _, _, tile in folds], axis=0).astype(np.float32)
        overall = self.score(total, tries)
        segments = [Segment(start, n, *self._decision(self.score(t, tries))) for start, n, t in folds]
        scale = period / self.spec.tile_px
        return Detection(
            frames=whole.frames,
            period_px=period,
            scale=scale,
            overall=overall,
            segments=segments,
        )

    @staticmethod
    def _decision(score: Score) -> tuple[float, bool]:
        return score.z, score.marked

    def size_periods(self, height: int, width: int) -> list[float]:
        """Periods the frame size suggests: the frame rescaled whole from any size (the pattern
        scales with the height), or cropped from a common camera height without rescaling."""
        spec = self.spec
        heights = (height, *self.cfg.common_heights_px)
        periods = [spec.tile_px * height / spec.canonical_height_px]  # rescaled from 360 rows or more
        periods += [spec.tile_px * max(h / spec.canonical_height_px, spec.min_scale) for h in heights]
        return [p for p in dict.fromkeys(periods) if self.cfg.min_period_px <= p <= min(height, width)]

    def choose_period(self, frames: FrameSum, candidates: list[float]) -> tuple[float, int]:
        """The candidate whose fold of `frames` correlates best, refined by small steps; also how
        many periods were tried (the false-positive bound counts each)."""
        tried: dict[float, float] = {}

        def trial_z(period: float) -> float:
            if period not in tried:
                tried[period] = self.score(self.fold_sum(frames, period)).z
            return tried[period]

        best = max(candidates, key=trial_z)
        for step in self.cfg.refine_steps:
            best = max((best, best * (1.0 + step), best * (1.0 - step)), key=trial_z)
        return best, len(tried)

    def fold_sum(self, frames: FrameSum, period_px: float) -> FloatArray:
        """The fold of every frame added into `frames` (each size folded once)."""
        tiles = [self.fold(total, period_px) for total in frames.sums.values()]
        return tiles[0] if len(tiles) == 1 else np.sum(tiles, axis=0).astype(np.float32)

    def fold(self, luma: Luma | FloatArray, period_px: float) -> FloatArray:
        """`luma` (a frame or a sum of frames) band-passed, resampled so the period is
        `fold_px`, summed modulo the period.

        The tile holds the pattern's ring (at most 22 cycles) with room to spare at 64 samples,
        so frames are only ever shrunk onto it (after an anti-alias blur), never enlarged."""
        p = self.cfg.fold_px
        factor = p / period_px
        x = np.asarray(luma, np.float32)
        box = max(3, round(self.cfg.highpass_box_px * period_px / self.spec.tile_px) | 1)
        x = np.subtract(x, cv2.blur(x, (box, box)), dtype=np.float32)
        if factor < 1.0:
            x = np.asarray(cv2.GaussianBlur(x, (0, 0), self.cfg.antialias_sigma_px / factor), np.float32)
        height = int(luma.shape[0] * factor)
        width = int(luma.shape[1] * factor)
        matrix = np.array([[factor, 0.0, 0.0], [0.0, factor, 0.0]], np.float64)
        x = np.asarray(cv2.warpAffine(x, matrix, (width, height), flags=cv2.INTER_LINEAR), np.float32)
        padded = np.zeros((-(-height // p) * p, -(-width // p) * p), np.float32)
        padded[:height, :width] = x
        folded: FloatArray = padded.reshape(padded.shape[0] // p, p, padded.shape[1] // p, p).sum(axis=(0, 2))
        return folded

    def _tile_spectrum(self, folded: FloatArray) -> NDArray[np.complex128]:
        """The folded tile's spectrum in the pattern bank's layout (tile_px, tile_px // 2 + 1)."""
        p, f = self.spec.tile_px, folded.shape[0]
        small = np.fft.rfft2(folded)
        full = np.zeros((p, p // 2 + 1), np.complex128)
        half = f // 2
        full[:half, : half + 1] = small[:half]
        full[p - half :, : half + 1] = small[half:]
        return full

    def score(self, folded: FloatArray, tries: int = 1) -> Score:
        """Presence, offset and payload of one folded tile."""
        p = self.spec.tile_px
        spectrum = self._tile_spectrum(folded)
        magnitude = np.abs(spectrum)
        whitened = np.where(self.bank.band, spectrum / np.maximum(magnitude, 1e-9), 0.0)
        corr = np.fft.irfft2(whitened * np.conj(self.bank.sync_spectrum), s=(p, p))
        peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
        std = float(np.std(corr))
        z = float((corr[peak] - np.mean(corr)) / std) if std > 0 else 0.0
        offset = (
            peak[0]
            + self._vertex(corr[(peak[0] - 1) % p, peak[1]], corr[peak], corr[(peak[0] + 1) % p, peak[1]]),
            peak[1]
            + self._vertex(corr[peak[0], (peak[1] - 1) % p], corr[peak], corr[peak[0], (peak[1] + 1) % p]),
        )
        ky = np.fft.fftfreq(p, 1.0 / p)[:, None]
        kx = np.arange(p // 2 + 1)[None, :]
        undo_shift = np.exp(2j * np.pi * (ky * offset[0] + kx * offset[1]) / p)
        aligned = whitened * undo_shift
        soft = np.array([float(np.sum((aligned * np.conj(b)).real)) for b in self.bank.bit_spectra])
        bits = (soft > 0).astype(np.uint8)
        fp = false_positive_bound(z, p * p * tries)
        marked = z >= self.cfg.threshold_z
        return Score(
            z=z,
            marked=marked,
            confidence=1.0 - fp,
            offset_px=(float(offset[0]), float(offset[1])),
            bits=bits,
            payload=Payload.repair(soft, self.cfg.repair_bits, self.cfg.repair_flips) if marked else None,
        )

    @staticmethod
    def _vertex(left: float, mid: float, right: float) -> float:
        denom = left - 2.0 * mid + right
        return float(0.5 * (left - right) / denom) if denom < 0 else 0.0
