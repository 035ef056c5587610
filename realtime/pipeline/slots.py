"""Hand-over points between pipeline stages: explicit back-pressure, bounded memory.

`LatestSlot` (live video): holds one item; a new item replaces one not yet taken, and the
replaced item is counted as dropped, so a slow consumer sees the newest frame and never a
backlog. `Channel` is a bounded FIFO that either waits for room (`blocking`, for offline runs
where nothing may be lost) or drops its oldest item (live runs, where latency must not grow).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    def __init__(self) -> None:
        self._item: T | None = None
        self._has_item = False
        self._ended = False
        self._event = asyncio.Event()
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Stores `item`; True when it replaced an item nobody took (a dropped frame)."""
        replaced = self._has_item
        if replaced:
            self.dropped += 1
        self._item, self._has_item = item, True
        self._event.set()
        return replaced

    def end(self) -> None:
        self._ended = True
        self._event.set()

    async def get(self) -> T | None:
        """The newest item, or None once ended and empty."""
        while not self._has_item:
            if self._ended:
                return None
            self._event.clear()
            await self._event.wait()
        item, self._item, self._has_item = self._item, None, False
        return item


class Channel(Generic[T]):
    def __init__(self, maxsize: int, blocking: bool) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self.maxsize = maxsize
        self.blocking = blocking
        self._items: deque[T | None] = deque()
        self._changed = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: T | None) -> T | None:
        """Appends `item` (None marks the end). Blocking: waits for room. Otherwise drops and
        returns the oldest item when full (never the end marker)."""
        if self.blocking or item is None:
            while len(self._items) >= self.maxsize and item is not None:
                self._changed.clear()
                await self._changed.wait()
            self._items.append(item)
            self._changed.set()
            return None
        return self.put_nowait(item)

    def end_nowait(self) -> None:
        """Appends the end marker now, room or not (a stage that failed can no longer wait)."""
        self._items.append(None)
        self._changed.set()

    def put_nowait(self, item: T) -> T | None:
        dropped: T | None = None
        if len(self._items) >= self.maxsize and self._items[0] is not None:
            dropped = self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._changed.set()
        return dropped

    async def get(self) -> T | None:
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        item = self._items.popleft()
        self._changed.set()
        return item
