"""The shipped cpu-rt export on onnxruntime's CPU backend (one thread), for tests that drive
the batcher or a session with the real engine; skips where the export is not shipped."""

from __future__ import annotations

import pytest

from stablesync.export import load_engine
from stablesync.export.engine import Engine
from stablesync.realtime.pipeline.loading import default_weights_dir


def shipped_cpu_engine() -> Engine:
    weights = default_weights_dir()
    if not (weights / "manifest.json").is_file():
        pytest.skip("no shipped cpu-rt weights")
    return load_engine(weights, "ort-cpu", intra_op_threads=1)
