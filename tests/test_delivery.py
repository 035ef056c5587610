"""The delivery rule (`realtime.pipeline.delivery.DelayTarget`): the audio delay follows the video's
latency, rounded, above the transport's floor, and moves only past the hysteresis; `serve` sets
its returned audio's delay by it and `run`'s delay line releases the audio by it. Given
latencies and a fake clock: no timing."""

from __future__ import annotations

import asyncio

import av
import numpy as np

from realtime.local.sinks.virtual_mic import AudioDelayLine
from realtime.pipeline.delivery import DelayRule, DelayTarget
from realtime.pipeline.frames import NS_PER_MS, AudioChunk
from realtime.webrtc.config import ServeConfig
from realtime.webrtc.processing import PassthroughSession, ProcessedFrame
from realtime.webrtc.session import MIN_LATENCY_SAMPLES, Session
from tests.fake_clock import FakeClock


def ms(value: float) -> int:
    return int(value * NS_PER_MS)


def test_the_delay_follows_the_latency_past_the_hysteresis_only() -> None:
    delay = DelayTarget(DelayRule(hysteresis_ms=20.0, step_ms=10.0))
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
    delay = DelayTarget(DelayRule(max_delay_ms=500.0))
    assert delay.update(ms(2400)) == ms(500)


def test_serve_delays_its_returned_audio_by_the_rule() -> None:
    pipeline = PassthroughSession()
    session = Session("s", ServeConfig(port=0), pipeline, lambda _: None, "passthrough")
    floor_ms = session.audio_out.receive_delay_ns / NS_PER_MS

    def delivered(latency_ms: float, frames: int) -> None:  # encoded and sent this long after capture
        for _ in range(frames):
            pipeline.delivered(ProcessedFrame(av.VideoFrame(32, 32), 0, "passthrough"), ms(latency_ms), None)

    session._follow_video_latency()  # nothing measured yet: the floor
    assert session.audio_out.sync_delay_ns == session.audio_out.receive_delay_ns
    delivered(160.0, MIN_LATENCY_SAMPLES - 1)
    session._follow_video_latency()  # too few frames yet: still the floor
    assert session.audio_out.sync_delay_ns == session.audio_out.receive_delay_ns
    delivered(160.0, 1)
    session._follow_video_latency()
    assert session.audio_out.sync_delay_ns == ms(160)
    assert session.stats.sync_delay_ms == 160.0
    delivered(170.0, 100)  # within the hysteresis
    session._follow_video_latency()
    assert session.audio_out.sync_delay_ns == ms(160) and floor_ms < 160


async def test_run_s_delay_line_releases_each_chunk_at_capture_plus_the_rule_s_delay() -> None:
    """`run`'s virtual-microphone delay line, on a fake clock: each chunk leaves at its capture
    time plus the delay the rule applies, the delay moving only past the 25 ms hysteresis."""
    clock = FakeClock()
    start = clock.monotonic_ns()
    line = AudioDelayLine(clock=clock)
    # 100 ms apart, so a delay that shrinks never makes a chunk due before the previous one left
    chunks = [
        AudioChunk(np.zeros(320, np.float32), 16_000, start + ms(100 * i), ms(100 * i)) for i in range(6)
    ]
    queue: asyncio.Queue[AudioChunk | None] = asyncio.Queue()
    for chunk in [*chunks, None]:
        queue.put_nowait(chunk)
    targets = iter([150, 160, 174, 176, 150, 120])  # the video latency each time a chunk is due
    written: list[int] = []

    async def write(chunk: AudioChunk) -> None:
        written.append(clock.monotonic_ns() - chunk.capture_ns)

    await line.run(queue.get, lambda: ms(next(targets)), write)
    # 150 | 160, 170 (174 rounded): within 25 ms, held | 180: moves | 150: back | 120: moves
    assert [w / NS_PER_MS for w in written] == [150, 150, 150, 180, 150, 120]
    assert line.applied_delay_ns == ms(120) and line.delay.changes == 3
