"""The delivery rule (`realtime.delivery.DelayTarget`): the audio delay follows the video's
latency, rounded, above the transport's floor, and moves only past the hysteresis; and `serve`
sets its returned audio's delay by it. Pure arithmetic on given latencies: no clock, no timing."""

from __future__ import annotations

from realtime.delivery import DelayRule, DelayTarget
from realtime.frames import NS_PER_MS
from realtime.webrtc.config import ServeConfig
from realtime.webrtc.processing import PassthroughSession
from realtime.webrtc.session import MIN_LATENCY_SAMPLES, Session


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
    session = Session("s", ServeConfig(port=0), PassthroughSession(), lambda _: None, "passthrough")
    floor_ms = session.audio_out.receive_delay_ns / NS_PER_MS
    session._follow_video_latency()  # nothing measured yet: the floor
    assert session.audio_out.sync_delay_ns == session.audio_out.receive_delay_ns
    session.stats.latencies_ms.extend([160.0] * MIN_LATENCY_SAMPLES)  # measured after encoding
    session._follow_video_latency()
    assert session.audio_out.sync_delay_ns == ms(160)
    assert session.stats.sync_delay_ms == 160.0
    session.stats.latencies_ms.extend([170.0] * 100)  # within the hysteresis
    session._follow_video_latency()
    assert session.audio_out.sync_delay_ns == ms(160) and floor_ms < 160
