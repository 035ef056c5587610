"""A fixture that turns Python's automatic garbage collector off for one test, so the test sees
what code lets go of by itself (or by its own `gc.collect()`), not what a collection happened to
free meanwhile."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest


@pytest.fixture
def no_cyclic_gc() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
