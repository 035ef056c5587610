"""The pattern's period in a video's frames, from their summed, whitened power spectra.

A pattern repeating every T pixels puts peaks in the frames' autocorrelation at lags (T, 0),
(0, T), (T, T) and (T, -T); T / the tile's period at the canonical height is the rescale.
"""

from __future__ import annotations

import cv2
import numpy as np
import scipy.fft
from numpy.typing import NDArray

from stablesync.realtime.watermark.config import DetectConfig

Luma = NDArray[np.uint8]
FloatArray = NDArray[np.float32]


class PeriodEstimator:
    """Sums the power spectra of high-passed frames; `candidates()` lists likely periods.

    The spectra are single precision (scipy's FFT on float32, every core): a 720p frame takes
    about a third of numpy's double-precision time, and the sum of 30 spectra keeps its peaks."""

    def __init__(self, cfg: DetectConfig) -> None:
        self.cfg = cfg
        self.frames = 0
        self._power: FloatArray | None = None
        self._window: FloatArray | None = None

    def add(self, luma: Luma) -> None:
        x = luma.astype(np.float32)
        x -= cv2.blur(x, (9, 9))
        if self._window is None or self._window.shape != x.shape:
            self._window = np.outer(np.hanning(x.shape[0]), np.hanning(x.shape[1])).astype(np.float32)
            self._power = None
            self.frames = 0
        x *= self._window
        spectrum = scipy.fft.rfft2(x, workers=-1)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        if self._power is None:
            self._power = power
        else:
            self._power += power
        self.frames += 1

    def candidates(self) -> list[float]:
        """Likely periods in pixels, best first (empty when no frame was added or it is too small).

        The summed power spectrum is divided by a blurred copy of itself (the picture's broad
        spectrum flattens, the pattern's lattice of narrow peaks stays), so its inverse FFT,
        the autocorrelation, shows the pattern's period above the picture's own structure."""
        if self._power is None or self._window is None:
            return []
        height, width = self._window.shape
        power = self._power
        whitened = power / (cv2.GaussianBlur(power, (0, 0), self.cfg.whiten_sigma_bins) + 1e-6)
        corr = scipy.fft.irfft2(whitened, s=(height, width), workers=-1)
        lags = np.arange(int(self.cfg.min_period_px), int(min(height, width) / 2) - 2)
        if len(lags) < 3:
            return []
        profile = corr[0, lags] + corr[lags, 0] + corr[lags, lags] + corr[-lags, lags]
        peaks = [
            i for i in range(1, len(lags) - 1) if profile[i] >= profile[i - 1] and profile[i] > profile[i + 1]
        ]
        peaks.sort(key=lambda i: -profile[i])
        periods = []
        for i in peaks[: self.cfg.period_candidates]:
            left, mid, right = profile[i - 1], profile[i], profile[i + 1]
            denom = left - 2 * mid + right  # parabola through the peak and its neighbours
            periods.append(float(lags[i]) + (0.5 * float(left - right) / float(denom) if denom < 0 else 0.0))
        return periods
