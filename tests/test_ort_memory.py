"""The onnxruntime sessions an engine opens keep no per-shape memory patterns (issue 21)."""

from __future__ import annotations

from stablesync.export.backends.ort import OrtEngine
from tests.shipped_engine import shipped_cpu_engine


def test_engine_sessions_have_memory_patterns_off() -> None:
    """onnxruntime's memory patterns (on by default) keep an arena layout per batch shape, which
    made serve's RSS grow with every batch size the batcher formed; both graphs open with them off."""
    engine = shipped_cpu_engine()
    assert isinstance(engine, OrtEngine)
    assert set(engine._sessions) == {"reference", "frame"}
    for role, session in engine._sessions.items():
        assert session.get_session_options().enable_mem_pattern is False, role
