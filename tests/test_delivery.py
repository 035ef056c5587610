"""The delivery policy (`stablesync.realtime.pipeline.delivery`): the audio delay follows the video's latency
(the median of the recent hand-offs, the expected latency before enough are measured), rounded,
above the transport's floor, and moves only past the hysteresis; `serve` sets its returned
audio's delay by it and `run`'s delay line releases the audio by it, the two taking the same
decisions for the same latencies. Given latencies and a fake clock: no timing."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest

from stablesync.export.engine import Engine
from stablesync.realtime.local.handoff import FrameHandOff
from stablesync.realtime.local.runner import RunConfig
from stablesync.realtime.local.sinks.virtual_mic import AudioDelayLine
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.delivery import DelayFollower, DelayTarget, DeliveryConfig
from stablesync.realtime.pipeline.frames import NS_PER_MS, AudioChunk, OutputFrame, VideoFrame
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from stablesync.realtime.pipeline.telemetry import Telemetry
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.lipsync import LipSyncPipeline
from stablesync.realtime.webrtc.peer import PeerSession
from stablesync.realtime.webrtc.processing import PassthroughSession, ProcessedFrame
from tests.fake_clock import FakeClock
from tests.shipped_engine import shipped_cpu_engine

FRAME_MS = 40.0


def ms(value: float) -> int:
    return int(value * NS_PER_MS)


def test_the_delay_follows_the_latency_past_the_hysteresis_only() -> None:
    delay = DelayTarget(DeliveryConfig(hysteresis_ms=20.0, step_ms=10.0))
    applied = [delay.update(ms(latency)) / NS_PER_MS for latency in (150, 161, 144, 169, 171, 150, 129)]
    # 150 | 160 and 140 are within 20 ms: held | 170 is 20 away: moves | 150: back | 130: moves
    assert applied == [150, 150, 150, 170, 170, 150, 130]
    assert delay.changes == 3


def test_the_floor_holds_before_any_latency_and_lifts_a_lower_delay_at_once() -> None:
    delay = DelayTarget()
    assert delay.update(None, floor_ns=ms(80)) == ms(80)
    assert delay.update(ms(70), floor_ns=ms(80)) == ms(80)  # never below what the transport holds
    assert delay.update(ms(90), floor_ns=ms(95)) == ms(95)  # a floor above the delay wins, however close


def test_the_delay_is_capped() -> None:
    delay = DelayTarget(DeliveryConfig(max_delay_ms=500.0))
    assert delay.update(ms(2400)) == ms(500)


def _deliver(telemetry: Telemetry, latency_ms: float, frames: int = 1) -> None:
    for _ in range(frames):
        telemetry.record_delivery(0, "lipsync", ms(latency_ms), None)


def test_the_follower_takes_the_budget_share_until_enough_frames_then_the_window_s_median() -> None:
    cfg = DeliveryConfig(window_frames=5, min_frames=3, expected_budget_share=0.5, hysteresis_ms=1.0)
    telemetry = Telemetry()
    delay = DelayFollower(telemetry, cfg, budget_ms=300.0)
    assert delay.follow() == ms(150)  # nothing measured: half the budget
    _deliver(telemetry, 200.0, 2)
    assert delay.follow() == ms(150)  # two frames are too few
    _deliver(telemetry, 200.0)
    assert delay.follow() == ms(200)
    _deliver(telemetry, 900.0, 2)  # two stray frames in five: the median holds
    assert delay.follow() == ms(200)
    _deliver(telemetry, 400.0, 3)  # the oldest frames leave the window: 900, 900, 400, 400, 400
    assert delay.follow() == ms(400)
    assert DelayFollower(Telemetry(), cfg).follow(floor_ns=ms(80)) == ms(80)  # no budget: the floor


async def test_serve_delays_its_returned_audio_by_the_policy_at_each_hand_off() -> None:
    clock = FakeClock()
    session = PeerSession(
        "s", ServeConfig(port=0), PassthroughSession(), lambda _: None, "passthrough", clock=clock
    )
    floor_ns = session.audio_out.receive_delay_ns
    try:
        for _ in range(DeliveryConfig().min_frames):
            assert session.audio_out.sync_delay_ns == floor_ns  # no budget, too few frames: the floor
            capture_ns = clock.monotonic_ns()
            clock.advance_ms(160.0)
            # aiortc's sender encoded and sent the frame 160 ms after its capture
            sent_ns = clock.monotonic_ns()
            session._frame_sent(
                ProcessedFrame(av.VideoFrame(32, 32), capture_ns, "passthrough"), sent_ns, sent_ns
            )
        assert session.audio_out.sync_delay_ns == ms(160)  # the median, past the floor, at once
        assert session.stats.sync_delay_ms == 160.0
    finally:
        await session.pc.close()


async def test_run_s_delay_line_releases_each_chunk_at_capture_plus_the_delay_then() -> None:
    """`run`'s virtual-microphone delay line, on a fake clock: each chunk leaves at its capture
    time plus the delay applied when it comes up, ahead by the device's own latency."""
    clock = FakeClock()
    start = clock.monotonic_ns()
    line = AudioDelayLine(clock=clock)
    line.device_latency_ns = ms(30)
    # 100 ms apart, so a delay that shrinks never makes a chunk due before the previous one left
    chunks = [
        AudioChunk(np.zeros(320, np.float32), 16_000, start + ms(100 * i), ms(100 * i)) for i in range(4)
    ]
    queue: asyncio.Queue[AudioChunk | None] = asyncio.Queue()
    for chunk in [*chunks, None]:
        queue.put_nowait(chunk)
    delays = iter([150, 150, 180, 120])  # what the follower applies as each chunk comes up
    written: list[int] = []

    async def write(chunk: AudioChunk) -> None:
        written.append(clock.monotonic_ns() - chunk.capture_ns)

    await line.run(queue.get, lambda: ms(next(delays)), write)
    assert [w / NS_PER_MS for w in written] == [120, 120, 150, 90]
    assert line.delay_ns == ms(120) and line.chunks_out == 4


# A latency series (ms, capture -> hand-off) that walks the whole policy: the expected latency
# first, the first median, a drift within the hysteresis, stray frames, a new level, a step of
# just the hysteresis (20 ms moves, 25 would not), the cap and a fall, all above serve's 80 ms
# floor (run has none).
LATENCIES_MS = [
    *[230.0] * 10,
    *[244.0] * 12,
    *[900.0] * 5,
    *[300.0] * 30,
    *[322.0] * 25,
    *[3000.0] * 25,
    *[120.0] * 25,
]


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


@contextlib.asynccontextmanager
async def _live_session(engine: Engine) -> AsyncIterator[tuple[FakeClock, LipSyncSession]]:
    """A live session (the default settings; not started: nothing runs) on a fake clock."""
    clock = FakeClock()
    session = LipSyncSession(InferenceBatcher(engine, clock=clock), SessionConfig(), clock=clock)
    try:
        yield clock, session
    finally:
        await session.close(1.0)


def _output(capture_ns: int) -> OutputFrame:
    image = np.zeros((32, 32, 3), np.uint8)
    return OutputFrame(VideoFrame(image, capture_ns, 0, 0), image, "lipsync")


async def _run_decisions(clock: FakeClock, session: LipSyncSession) -> list[int]:
    """The delay `run` applies after each frame reached its sinks (none here) this late."""
    hand_off = FrameHandOff(session, RunConfig().delivery, audio_delayed=True)
    decisions = []
    for latency_ms in LATENCIES_MS:
        clock.advance_ms(FRAME_MS)
        out = _output(clock.monotonic_ns())
        clock.advance_ms(latency_ms)
        await hand_off(out)
        decisions.append(hand_off.delay.applied_ns)
    return decisions


async def _serve_decisions(clock: FakeClock, session: LipSyncSession) -> list[int]:
    """The sync delay `serve` applies after each frame was encoded and sent this late: the
    returned track hands a frame to aiortc's sender, which asks for the next once it has sent it."""
    executor = ThreadPoolExecutor(max_workers=1)
    peer = PeerSession(
        "s", ServeConfig(port=0), LipSyncPipeline(session, executor), lambda _: None, "ort-cpu", clock=clock
    )
    track = peer.video_out
    decisions = []
    try:
        request = asyncio.ensure_future(track.recv())
        for latency_ms in LATENCIES_MS:
            clock.advance_ms(FRAME_MS)
            out = _output(clock.monotonic_ns())
            track.push(ProcessedFrame(av.VideoFrame(32, 32), out.frame.capture_ns, out.mode, out))
            await asyncio.wait_for(request, 5)
            clock.advance_ms(latency_ms)
            request = asyncio.ensure_future(track.recv())  # sent: the sender asks for the next
            await asyncio.sleep(0)
            decisions.append(peer.audio_out.sync_delay_ns)
        request.cancel()
    finally:
        executor.shutdown(wait=False)
        await peer.pc.close()
    return decisions


async def test_run_and_serve_take_the_same_delay_decisions_for_the_same_latencies(engine: Engine) -> None:
    """Each front end as it is wired (its own hand-off, its default policy, its session's
    budget), fed the same latencies on a fake clock: the same delay after every frame."""
    async with _live_session(engine) as (clock, session):
        run = [d / NS_PER_MS for d in await _run_decisions(clock, session)]
    async with _live_session(engine) as (clock, session):
        serve = [d / NS_PER_MS for d in await _serve_decisions(clock, session)]
    assert serve == run
    # 0.6 x the 250 ms budget | the first median | 244 and the strays held | 300 | 320 | the cap | 120
    assert [value for value, _ in itertools.groupby(run)] == [150, 230, 300, 320, 1500, 120]
