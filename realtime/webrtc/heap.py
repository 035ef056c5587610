"""The C heap of a long-running server (glibc's malloc; elsewhere these do nothing).

Sessions come and go on threads of their own (tracking, compositing, aiortc's decoders) and
glibc gives threads arenas of their own, up to 8 per core; each arena keeps pieces of what its
sessions freed that it cannot hand back, so with every arena in use the server's RSS crept up
session after session (8 sessions one after another, the server in one process: +21 MB and
still rising, against +17 MB and flat from the 4th with 2 arenas)."""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Any

M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def _glibc_call(name: str) -> Any | None:
    """The C library's function `name` when it is glibc's (None elsewhere: not Linux, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None


def server_arenas() -> int:
    """One malloc arena per core this process may run on, at least 2."""
    return max(2, len(os.sched_getaffinity(0)))


def limit_arenas(arenas: int) -> bool:
    """Caps the arenas glibc makes for this process's threads from now on (`mallopt`, as
    MALLOC_ARENA_MAX would at start: call it before the process has 8 arenas, as glibc then
    fixes its own limit); False where it could not be set."""
    mallopt = _glibc_call("mallopt")
    return mallopt is not None and bool(mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> None:
    """Hands the C heap's free pages back to the system (glibc `malloc_trim`; ctypes releases
    the GIL for the call): a session's codecs, tracker and pipeline threads allocate and free
    tens of MB, and the arenas keep the freed pages until trimmed."""
    trim = _glibc_call("malloc_trim")
    if trim is not None:
        trim(0)
