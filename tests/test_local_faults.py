"""Faults in `run`'s and the camera take's own plumbing are seen, not swallowed
(`realtime/local/runner.py`, `realtime/local/take_recorder.py`): a source whose close raises is
logged with its traceback while the others still close; a failure to end the session's input
stops the run with a one-line error; a frame write that fails once the camera has stopped (the
disk full) refuses the take in one line naming the file, instead of a take checked as if it
were whole, and leaves none of its partial files behind; a face look that raises is logged with
its traceback once and counted after."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stablesync.errors import UserError
from stablesync.realtime.local import runner, take_recorder
from stablesync.realtime.local.runner import RunConfig, Runner, close_sources
from stablesync.realtime.local.take_recorder import RecordConfig, TakeRecorder
from stablesync.realtime.pipeline.clock import StreamClock
from stablesync.realtime.pipeline.frames import AudioChunk, VideoFrame

FRAME_NS = 40_000_000


class Camera:
    """30 grey frames 40 ms apart on the take's clock, then nothing."""

    async def run(self, emit: Any, clock: StreamClock) -> None:
        for i in range(30):
            await emit(VideoFrame(np.full((64, 64, 3), 110, np.uint8), clock.capture_ns(i * FRAME_NS), 0, i))
        await asyncio.Event().wait()


class Microphone:
    """One 20 ms chunk at the start (the take begins with it), then nothing."""

    async def run(self, emit: Any, clock: StreamClock) -> None:
        await emit(AudioChunk(np.zeros(320, np.float32), 16_000, clock.capture_ns(0), 0))
        await asyncio.Event().wait()


def test_a_write_that_fails_after_the_camera_stopped_refuses_the_take(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    class FullDisk(take_recorder.Mp4Writer):
        written = 0

        def write(self, frame_rgb: np.ndarray[Any, Any]) -> None:
            FullDisk.written += 1
            if FullDisk.written > 20:  # still queued for the encoder when the take ends
                raise OSError(28, "No space left on device")
            super().write(frame_rgb)

    monkeypatch.setattr(take_recorder, "Mp4Writer", FullDisk)
    video = tmp_path / "take.mp4"
    before = {name: name.encode() for name in ("take.mp4", "take.wav", "notes.txt")}  # an older take
    for name, data in before.items():
        (tmp_path / name).write_bytes(data)
    take = TakeRecorder(
        Camera(), Microphone(), video, tmp_path / "take.wav", RecordConfig(seconds=1.0, mic_wait_s=0.0)
    )
    with pytest.raises(UserError, match=r"cannot write .*take\.mp4: \[Errno 28\] No space left") as info:
        asyncio.run(take.record())
    assert "\n" not in str(info.value)
    assert take.written == 25 and FullDisk.written == 25  # every frame reached the writer first
    # the refused take's partial mp4 is gone; what was in the folder before is untouched
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    # every failed write was read: none left for asyncio to log as a traceback after the line
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_a_failing_face_look_is_logged_once_with_its_traceback_then_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    take = TakeRecorder(object(), object(), tmp_path / "t.mp4", tmp_path / "t.wav", RecordConfig())  # type: ignore[arg-type]

    async def looks() -> None:
        for _ in range(3):
            look: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            look.set_exception(RuntimeError("the face mesh failed"))
            take._looked(look)
        await take._drain()

    with caplog.at_level(logging.WARNING, logger=take_recorder.__name__):
        asyncio.run(looks())
    first, total = caplog.records  # the first failure, then how many in all
    assert "face look failed: RuntimeError: the face mesh failed" in first.getMessage()
    assert first.exc_info is not None and first.exc_info[0] is RuntimeError
    assert total.getMessage() == "camera take: 3 face looks failed in all" and total.exc_info is None
    assert take.looks_failed == 3


class Closing:
    """A source with a device to close; `fails` makes the close raise."""

    def __init__(self, fails: bool) -> None:
        self.fails = fails
        self.closed = False

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True
        if self.fails:
            raise RuntimeError("the device vanished")


def test_a_source_whose_close_raises_is_logged_and_the_others_still_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = Closing(fails=True), Closing(fails=False)
    with caplog.at_level(logging.ERROR, logger=runner.__name__):
        asyncio.run(close_sources(first, second))
    assert first.closed and second.closed
    (record,) = caplog.records
    assert record.getMessage() == "closing the Closing failed"
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_a_failure_to_end_the_session_s_input_stops_the_run_with_its_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = Runner(None, None, None, RunConfig(), paced=False)  # type: ignore[arg-type]

    async def source() -> None:  # a file source that played to its end
        pass

    async def end() -> None:
        raise RuntimeError("the audio queue is gone")

    with caplog.at_level(logging.ERROR, logger=runner.__name__):
        asyncio.run(run._feed("audio", source(), end))
    assert (
        run._error == "audio source: ending the session's input failed: RuntimeError: the audio queue is gone"
    )
    (record,) = caplog.records
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
