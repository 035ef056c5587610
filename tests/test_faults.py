"""Live faults are logged (`stablesync.realtime.pipeline.faults`): once with the traceback, then at most
once per interval with a count, and the stream goes on."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from stablesync.realtime.pipeline.faults import FaultLog
from tests.fake_clock import FakeClock


def _raise(exc: Exception) -> Exception:
    try:
        raise exc
    except Exception as caught:
        return caught


def test_first_fault_of_a_kind_has_its_traceback_then_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    faults = FaultLog(logging.getLogger("test.faults"), clock, interval_s=10.0)
    with caplog.at_level(logging.WARNING, logger="test.faults"):
        for _ in range(25):  # a second of frames that all fail
            faults.report("compositing", _raise(ValueError("bad shape")))
            clock.advance_ms(40)
        assert len(caplog.records) == 1
        first = caplog.records[0]
        assert first.exc_info is not None and "compositing failed" in first.getMessage()
        clock.advance_ms(10_000)
        faults.report("compositing", _raise(ValueError("bad shape")))
        assert len(caplog.records) == 2
        assert "24 more" in caplog.records[1].getMessage() and caplog.records[1].exc_info is None
        # another kind of fault is its own first one
        faults.report("tracking", _raise(RuntimeError("mesh")))
        faults.report("compositing", _raise(KeyError("x")))
        assert len(caplog.records) == 4 and all(r.exc_info for r in caplog.records[2:])


def test_a_session_whose_renderer_fails_logs_it_once_and_passes_frames_through(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from stablesync.benchmarks.offline_render import render_offline
    from stablesync.bundled import demo_assets
    from stablesync.media import read_audio
    from stablesync.realtime.pipeline.compositing import Compositor

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(Compositor, "composite", broken)
    face_path, speech_path = demo_assets()
    import cv2

    face = cv2.cvtColor(cv2.imread(str(face_path)), cv2.COLOR_BGR2RGB)
    audio = read_audio(speech_path)[: 16000 * 2]
    frames = [face] * 40
    with caplog.at_level(logging.WARNING, logger="stablesync.realtime.pipeline.session"):
        out = render_offline(None, frames, [i / 25 for i in range(40)], audio, still=True)
    assert len(out.images) == 40 and all(np.array_equal(im, face) for im in out.images)
    assert set(out.modes) == {"error"}
    logged = [r for r in caplog.records if "compositing failed" in r.getMessage()]
    assert len(logged) == 1 and logged[0].exc_info is not None
