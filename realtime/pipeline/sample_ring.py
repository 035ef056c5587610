"""A bounded series of float samples stored compactly, for telemetry that runs as long as a call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

CHUNK = 4096  # values per numpy block (32 KB)


class SampleRing:
    """The newest `maxlen` values appended, oldest first, 8 bytes each in numpy blocks made as
    values come (at most one block beyond `maxlen` is held). A deque of Python floats took about
    32 bytes a value: a 30-minute call's six telemetry series at 25 fps grew the process by
    10 MB, which read as a leak in a long call."""

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"maxlen: expected at least 1, got {maxlen}")
        self.maxlen = maxlen
        self._blocks: list[NDArray[np.float64]] = []
        self._fill = CHUNK  # values in the newest block

    def append(self, value: float) -> None:
        if self._fill == CHUNK:
            self._blocks.append(np.empty(CHUNK, dtype=np.float64))
            self._fill = 0
        self._blocks[-1][self._fill] = value
        self._fill += 1
        if self._held() - CHUNK >= self.maxlen:  # the oldest block holds only dropped values
            self._blocks.pop(0)

    def _held(self) -> int:
        return (len(self._blocks) - 1) * CHUNK + self._fill if self._blocks else 0

    def __len__(self) -> int:
        return min(self._held(), self.maxlen)

    def values(self) -> NDArray[np.float64]:
        """The values, oldest first (a copy)."""
        if not self._blocks:
            return np.empty(0, dtype=np.float64)
        held = np.concatenate([*self._blocks[:-1], self._blocks[-1][: self._fill]])
        return held[-self.maxlen :]

    def newest(self, n: int) -> list[float]:
        """The newest `n` values (fewer when fewer were kept), oldest first."""
        n = min(n, len(self))
        out: list[float] = []
        filled = self._fill  # the newest block's; every older one is full
        for block in reversed(self._blocks):
            if len(out) >= n:
                break
            take = min(n - len(out), filled)
            out[:0] = block[filled - take : filled].tolist()
            filled = CHUNK
        return out

    def __getitem__(self, index: int) -> float:
        return float(self.values()[index])

    def __iter__(self) -> Iterator[float]:
        return iter(self.values().tolist())

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        values = self.values()
        return values if dtype is None else values.astype(dtype)

    @property
    def nbytes(self) -> int:
        """Bytes of the blocks holding the values."""
        return sum(block.nbytes for block in self._blocks)
