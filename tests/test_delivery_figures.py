"""One stream, one set of figures: `run` and `serve` record a frame's delivery in the session's
`Telemetry` at the true hand-off (after the sink has the frame; after aiortc's sender encoded and
sent it), and `serve`'s stats (`SessionStats`) are read from that telemetry, so both report the
same frames out, modes, late frames, dropped frames, latency (capture -> hand-off) and A/V
offset. Real engine, tracker and renderer; serve's side on a clock the test moves (no timing),
run's side checked by the order of events on the monotonic clock."""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from stablesync.export.engine import Engine
from stablesync.realtime.local.runner import RunConfig, Runner
from stablesync.realtime.local.sinks import VirtualCameraConfig
from stablesync.realtime.local.sources import AudioFileSource, ImageSource, load_image
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.delivery import DeliveryConfig
from stablesync.realtime.pipeline.frames import NS_PER_MS, OutputFrame
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.lipsync import LipSyncPipeline
from stablesync.realtime.webrtc.media import MAX_VIDEO_QUEUE, ProcessedVideoTrack
from stablesync.realtime.webrtc.peer import PeerSession
from tests.fake_clock import FakeClock
from tests.shipped_engine import shipped_cpu_engine

BUDGET_MS = 2000.0  # no frame misses its deadline on the fake clock, however loaded the machine
FRAME_MS = 40.0
ENCODE_MS = 12.0
STEADY_FRAMES = 4
LAGGING_FRAMES = 1 + MAX_VIDEO_QUEUE + 2  # one being encoded, the queue full, two dropped


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


def _modes(counts: dict[str, int]) -> dict[str, int]:
    return {name.removeprefix("mode_"): n for name, n in counts.items() if name.startswith("mode_")}


async def _until(count: Callable[[], int], target: int, timeout_s: float = 30.0) -> None:
    """Waits (polling the event loop) until `count()` reaches `target`; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while count() < target:
        assert time.monotonic() < deadline, "the frame never reached the returned track"
        await asyncio.sleep(0.005)


def _waiting(track: ProcessedVideoTrack) -> int:
    return len(track._queue)  # frames the returned track holds for aiortc's sender


async def _ask_next(track: ProcessedVideoTrack) -> asyncio.Future[av.VideoFrame]:
    """What aiortc's sender does after it has encoded and sent a frame: asks for the next one
    (the track records the hand-off as the call starts, then waits for a frame)."""
    request = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0)
    return request


async def test_serve_reports_the_session_s_telemetry_taken_after_encoding(
    engine: Engine, rt_face_photo: Path
) -> None:
    clock = FakeClock()
    batcher = InferenceBatcher(engine, clock=clock)
    cfg = SessionConfig(budget_ms=BUDGET_MS, audio_out=False)
    lipsync = LipSyncSession(batcher, cfg, name="figures", clock=clock)
    await lipsync.start()
    executor = ThreadPoolExecutor(max_workers=1)
    pipeline = LipSyncPipeline(lipsync, executor)
    session = PeerSession("s", ServeConfig(port=0), pipeline, lambda _: None, "ort-cpu", clock=clock)
    send_loop = asyncio.ensure_future(session._send_video())  # pipeline -> returned track
    track = session.video_out
    face = av.VideoFrame.from_ndarray(load_image(rt_face_photo), format="rgb24")
    captures: list[int] = []
    latencies_ms: list[float] = []  # capture -> encoded and sent, of each frame the peer got

    async def capture() -> None:
        clock.advance_ms(FRAME_MS)
        captures.append(clock.monotonic_ns())
        await pipeline.push_video(face, captures[-1])

    def sent(capture_ns: int) -> None:
        latencies_ms.append((clock.monotonic_ns() - capture_ns) / NS_PER_MS)

    try:
        request = await _ask_next(track)
        for _ in range(STEADY_FRAMES):  # each frame encoded and sent before the next arrives
            await capture()
            await asyncio.wait_for(request, 30)
            clock.advance_ms(ENCODE_MS)
            request = await _ask_next(track)
            sent(captures[-1])
        # the encoder lags: it holds one frame while the next ones pile up; the oldest go
        await capture()
        await asyncio.wait_for(request, 30)
        encoding = captures[-1]

        def held_or_dropped() -> int:  # frames past the pipeline that the sender has not asked for
            telemetry_dropped = lipsync.telemetry.counts["frames_dropped"]
            return _waiting(track) + session.stats.dropped_frames + telemetry_dropped

        start = held_or_dropped()
        for k in range(1, LAGGING_FRAMES):
            await capture()
            await _until(held_or_dropped, start + k)
        for queued in [encoding, *captures[-MAX_VIDEO_QUEUE:]]:
            clock.advance_ms(ENCODE_MS)
            if queued == captures[-1]:
                await pipeline.end()
                await asyncio.wait_for(send_loop, 30)
                with pytest.raises(MediaStreamError):  # the hand-off of the last, then the end
                    await track.recv()
            else:
                request = await _ask_next(track)
                await asyncio.wait_for(request, 30)
            sent(queued)
    finally:
        send_loop.cancel()
        await pipeline.aclose()
        await batcher.close(2.0)
        executor.shutdown(wait=False)
        await session.pc.close()

    delivered = STEADY_FRAMES + 1 + MAX_VIDEO_QUEUE
    assert len(latencies_ms) == delivered
    summary = lipsync.telemetry.summary()  # the session's figures: what `run` reports
    counts = summary["counts"]
    message = session.final_stats()  # what `serve` reports
    # frames out and their modes: the frames the peer got, counted once
    assert counts["frames_out"] == message["frames_out"] == delivered
    assert _modes(counts) == message["modes"] and sum(message["modes"].values()) == delivered
    assert message["late_frames"] == counts.get("mode_late", 0)
    # dropped: every frame that came in and never reached the peer, wherever it went
    assert counts["frames_in"] == STEADY_FRAMES + LAGGING_FRAMES
    assert counts["frames_in"] == counts["frames_out"] + counts["frames_dropped"]
    assert message["dropped_frames"] == counts["frames_dropped"] == LAGGING_FRAMES - 1 - MAX_VIDEO_QUEUE
    # latency: capture -> encoded and sent, the same series on both sides
    assert list(lipsync.telemetry.series["glass_to_glass_ms"]) == pytest.approx(latencies_ms)
    assert message["server_latency_ms"]["p50"] == pytest.approx(float(np.median(latencies_ms)), abs=0.01)
    assert message["server_latency_ms"]["p50"] == summary["glass_to_glass_ms"]["p50"]
    # A/V offset: video latency minus the audio's delay, here the expected latency throughout
    # (fewer frames than the delay policy measures before it follows)
    delay_ms = session.stats.sync_delay_ms
    assert delay_ms == BUDGET_MS * DeliveryConfig().expected_budget_share
    assert summary["av_offset_ms"]["p50"] == message["av_offset_ms"]
    assert message["av_offset_ms"] == pytest.approx(message["server_latency_ms"]["p50"] - delay_ms, abs=0.01)
    assert message["telemetry"] == summary  # and the session's own figures, by the same names


class HandOffCamera:
    """A pyvirtualcam backend (pyvirtualcam's own extension point) noting when each frame has
    been written to it."""

    written_ns: ClassVar[list[int]] = []

    def __init__(
        self, *, width: int, height: int, fps: float, fourcc: int, device: str | None, **kw: Any
    ) -> None:
        del width, height, fps, fourcc, kw
        self._device = device or "/dev/handoff0"

    def send(self, frame: np.ndarray[Any, Any]) -> None:
        del frame
        time.sleep(0.002)  # a device write takes a moment
        HandOffCamera.written_ns.append(time.monotonic_ns())

    def close(self) -> None:
        pass

    def device(self) -> str:
        return self._device

    def native_fourcc(self) -> int | None:
        return None


async def test_run_records_each_frame_after_the_sink_has_it(engine: Engine, rt_face_photo: Path) -> None:
    import pyvirtualcam

    pyvirtualcam.register_backend("stablesync-handoff", HandOffCamera)
    HandOffCamera.written_ns.clear()
    seconds = 0.6
    handed: list[OutputFrame] = []
    cfg = RunConfig(
        session=SessionConfig(realtime=True, budget_ms=400.0),
        virtual_camera=VirtualCameraConfig(fps=25.0, backend="stablesync-handoff"),
        live_status=False,
        on_output=handed.append,
    )
    audio = AudioFileSource(np.zeros(int(seconds * 16_000), np.float32), 16_000)
    video = ImageSource(load_image(rt_face_photo), 25.0, duration_s=seconds)
    result = await Runner(engine, video, audio, cfg, paced=True).run()
    assert result.error is None
    summary = result.telemetry.summary()
    counts = summary["counts"]
    written = HandOffCamera.written_ns
    assert counts["frames_out"] == len(written) == len(handed) > 0
    assert _modes(counts) == dict(collections.Counter(out.mode for out in handed))
    latencies_ms = list(result.telemetry.series["glass_to_glass_ms"])
    assert len(latencies_ms) == len(handed)
    for out, latency_ms, written_ns in zip(handed, latencies_ms, written, strict=True):
        recorded_ns = out.frame.capture_ns + latency_ms * NS_PER_MS
        assert recorded_ns >= written_ns - 1000  # taken once the camera had the frame (float rounding)
