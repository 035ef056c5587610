"""Telemetry's bounded series (realtime/pipeline/sample_ring.py): the newest values in order,
whatever the bound and block size, and 8 bytes a value, so a long call's telemetry stays small."""

from __future__ import annotations

import collections
import tracemalloc

import numpy as np
import pytest

from stablesync.realtime.pipeline.sample_ring import CHUNK, SampleRing
from stablesync.realtime.pipeline.telemetry import Telemetry, TelemetryConfig, percentiles


@pytest.mark.parametrize("maxlen", [1, 7, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
@pytest.mark.parametrize("count", [0, 1, CHUNK, 2 * CHUNK + 3, 5 * CHUNK + 11])
def test_the_newest_values_in_order(maxlen: int, count: int) -> None:
    ring, reference = SampleRing(maxlen), collections.deque[float](maxlen=maxlen)
    for i in range(count):
        ring.append(float(i))
        reference.append(float(i))
    assert len(ring) == len(reference)
    assert list(ring) == list(reference)
    assert np.array_equal(np.asarray(ring), np.asarray(reference, dtype=np.float64))
    for n in (0, 1, 5, CHUNK + 2, maxlen, maxlen + 3):
        assert ring.newest(n) == list(reference)[max(0, len(reference) - n) :]
    if reference:
        assert ring[-1] == reference[-1] and ring[0] == reference[0]
    assert ring.nbytes <= 8 * (maxlen + 2 * CHUNK)


def test_a_long_calls_series_take_8_bytes_a_value() -> None:
    # 30 minutes at 25 fps into every series: a deque of floats held ~32 bytes a value (10 MB)
    values = 30 * 60 * 25
    telemetry = Telemetry(TelemetryConfig(max_samples=100_000))
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for i in range(values):
            for series in telemetry.series.values():
                series.append(100.0 + (i % 97) * 0.37)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_value = (held - before) / (values * len(telemetry.series))
    assert per_value <= 8.0 * (1 + CHUNK / values), per_value
    assert percentiles(telemetry.series["infer_ms"])["count"] == values
    assert telemetry.recent("infer_ms", 3) == list(telemetry.series["infer_ms"])[-3:]
