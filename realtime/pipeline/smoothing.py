"""The One-Euro filter (Casiez et al., CHI 2012): an adaptive low-pass filter whose cut-off rises
with speed, so a still face does not jitter and a moving face is followed without lag.

Vectorised: one filter smooths a whole landmark array; time comes from the frames' capture
times, so dropped frames do not distort it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stablesync.realtime.pipeline.frames import NS_PER_S

F64 = NDArray[np.float64]


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff_hz: float = 0.3  # smoothing when still (lower: steadier)
    beta: float = 0.05  # how fast the cut-off rises with speed (higher: less lag), per pixel/s
    derivative_cutoff_hz: float = 1.0


def _alpha(cutoff_hz: F64 | float, dt_s: float) -> F64 | float:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz))
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    def __init__(self, cfg: OneEuroConfig = OneEuroConfig()) -> None:
        self.cfg = cfg
        self._x: F64 | None = None
        self._dx: F64 | None = None
        self._t_ns: int | None = None

    def reset(self) -> None:
        self._x = self._dx = None
        self._t_ns = None

    def __call__(self, value: NDArray[np.floating], t_ns: int) -> F64:  # type: ignore[type-arg]
        x = np.asarray(value, dtype=np.float64)
        if self._x is None or self._dx is None or self._t_ns is None or t_ns <= self._t_ns:
            if self._x is None or self._x.shape != x.shape:
                self._x, self._dx, self._t_ns = x.copy(), np.zeros_like(x), t_ns
                return x.copy()
            return self._x.copy()  # same or older time: keep the last estimate
        dt_s = (t_ns - self._t_ns) / NS_PER_S
        dx = (x - self._x) / dt_s
        a_d = _alpha(self.cfg.derivative_cutoff_hz, dt_s)
        dx_hat = a_d * dx + (1.0 - a_d) * self._dx
        cutoff = self.cfg.min_cutoff_hz + self.cfg.beta * np.abs(dx_hat)
        a = _alpha(cutoff, dt_s)
        x_hat = a * x + (1.0 - a) * self._x
        self._x, self._dx, self._t_ns = x_hat, dx_hat, t_ns
        return np.asarray(x_hat, dtype=np.float64).copy()
