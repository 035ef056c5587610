"""Pieces of the real-time path on their own: hand-over slots, One-Euro smoothing, the mel
timeline (against the offline features), telemetry (the renderer: test_renderer.py)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from stablesync.audio import log_mel, mel_window, mel_window_start
from stablesync.realtime.pipeline.audio_windows import MelTimeline, WindowConfig
from stablesync.realtime.pipeline.frames import NS_PER_MS, NS_PER_S, AudioChunk, OutputFrame, VideoFrame
from stablesync.realtime.pipeline.slots import Channel, LatestSlot
from stablesync.realtime.pipeline.smoothing import OneEuroConfig, OneEuroFilter
from stablesync.realtime.pipeline.speech_level import SpeechLevel, SpeechLevelConfig
from stablesync.realtime.pipeline.telemetry import Telemetry
from tests.fake_clock import FakeClock


async def test_latest_slot_keeps_newest_and_counts_drops() -> None:
    slot: LatestSlot[int] = LatestSlot()
    assert slot.put(1) is False
    assert slot.put(2) is True  # 1 was never taken
    assert await slot.get() == 2
    slot.end()
    assert await slot.get() is None
    assert slot.dropped == 1


async def test_channel_drops_oldest_live_and_waits_offline() -> None:
    live: Channel[int] = Channel(2, blocking=False)
    for i in range(4):
        await live.put(i)
    assert [await live.get(), await live.get()] == [2, 3]
    assert live.dropped == 2
    offline: Channel[int] = Channel(1, blocking=True)
    await offline.put(1)
    blocked = asyncio.create_task(offline.put(2))
    await asyncio.sleep(0.01)
    assert not blocked.done()  # waits for room instead of dropping
    assert await offline.get() == 1
    await asyncio.wait_for(blocked, 1)
    assert await offline.get() == 2


def test_one_euro_removes_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(0)
    f = OneEuroFilter(OneEuroConfig())
    dt_ns = NS_PER_S // 25
    still = [f(np.array([100.0]) + rng.normal(0, 2.0, 1), i * dt_ns)[0] for i in range(100)]
    assert np.std(still[20:]) < 1.0  # raw jitter is 2 px
    f.reset()
    # A head moving at 300 px/s: the filtered track must stay within a few pixels (small lag).
    moving = [f(np.array([300.0 * i / 25]) + rng.normal(0, 2.0, 1), i * dt_ns)[0] for i in range(50)]
    lag = np.array([300.0 * i / 25 for i in range(50)]) - np.array(moving)
    assert np.abs(lag[25:]).mean() < 4.0


def test_mel_timeline_matches_offline_windows() -> None:
    rng = np.random.default_rng(1)
    rate = 16_000
    audio = (0.3 * rng.standard_normal(rate * 2)).astype(np.float32)
    offline = log_mel(audio)
    level = SpeechLevelConfig(enabled=False)  # the raw samples, as offline
    timeline = MelTimeline(WindowConfig(lookahead_ms=80.0, window_frames=16, speech_level=level))
    start_ns = 5 * NS_PER_S
    pos = 0
    for size in (320, 123, 999, 320, 4000, 1):  # any chunking
        while pos < audio.size and size:
            part = audio[pos : pos + size]
            timeline.push(AudioChunk(part, rate, start_ns + pos * NS_PER_S // rate, pos * NS_PER_S // rate))
            pos += part.size
            if pos > rate:
                break
    for frame in (3, 10, 20):
        capture = start_ns + frame * NS_PER_S // 25
        assert timeline.is_ready(capture)
        got = timeline.window(capture)
        want = mel_window(offline, mel_window_start(frame, 25.0, 80.0, 16), 16)
        assert got.complete
        np.testing.assert_allclose(got.mel, want, atol=1e-4)
    # A frame whose audio has not arrived: cut short (less look-ahead), never blocks.
    late = timeline.window(start_ns + 2 * NS_PER_S)
    assert not late.complete


def test_mel_timeline_silence_is_exactly_silent_and_gaps_are_filled() -> None:
    rate = 16_000
    timeline = MelTimeline(WindowConfig())
    quiet = (1e-4 * np.random.default_rng(2).standard_normal(rate // 2)).astype(np.float32)
    timeline.push(AudioChunk(quiet, rate, 0, 0))
    # 300 ms gap in capture time (a dropped device buffer) then more quiet audio
    timeline.push(AudioChunk(quiet, rate, 800_000_000, 800_000_000))
    w = timeline.window(500_000_000)
    assert w.silent and np.all(w.mel == -4.0)  # identical windows: the mouth stays still
    assert timeline.frames_available >= int(1.25 * 80)


def test_mel_timeline_anchor_follows_the_earliest_stamped_chunk() -> None:
    """The first chunk came 120 ms late (it waited behind the connection's start); the ones
    after it came straight through: the frame captured with a sample is paired with the window
    of that sample's time, not 120 ms later."""
    rate = 16_000
    chunk_ns = 20 * NS_PER_MS
    timeline = MelTimeline(WindowConfig())
    quiet = np.zeros(rate // 50, np.float32)  # 20 ms
    start_ns = 5 * NS_PER_S
    timeline.push(AudioChunk(quiet, rate, start_ns + 120 * NS_PER_MS, 0))
    for i in range(1, 10):
        timeline.push(AudioChunk(quiet, rate, start_ns + i * chunk_ns, i * chunk_ns))
    lookahead_frames = round(80 * timeline.mel_cfg.mel_fps / 1000)
    # a frame captured at the first sample's true time: its window ends the look-ahead after it
    assert timeline.window_start(start_ns) + timeline.cfg.window_frames == lookahead_frames


def test_telemetry_percentiles_and_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    tel = Telemetry()
    img = np.zeros((4, 4, 3), np.uint8)
    for i in range(100):
        frame = VideoFrame(img, capture_ns=i * 40_000_000, pts_ns=i * 40_000_000, index=i)
        out = OutputFrame(frame=frame, image=img, mode="lipsync" if i % 10 else "late")
        tel.record_output(out, handed_ns=frame.capture_ns + (i + 1) * 1_000_000, audio_delay_ns=50_000_000)
    s = tel.summary()
    assert s["glass_to_glass_ms"]["p50"] == pytest.approx(50.5, abs=0.6)
    assert s["glass_to_glass_ms"]["p99"] == pytest.approx(99.0, abs=1.1)
    assert s["counts"]["mode_late"] == 10
    assert s["sustained_fps"] == pytest.approx(1000 / 41, rel=0.01)
    path = tel.write_json(tmp_path / "s.json", {"command": "test"})
    data = json.loads(path.read_text())
    assert data["command"] == "test" and "p95" in data["av_offset_ms"]
    assert "fps" in tel.status_line()


def test_telemetry_reads_the_stream_s_clock_and_offsets_video_minus_audio() -> None:
    clock = FakeClock()
    tel = Telemetry(clock=clock)
    start = clock.monotonic_ns()
    for i in range(50):  # 2 s at 25 fps, each frame handed on 120 ms after capture, its sound 100 ms
        capture_ns = start + i * 40 * NS_PER_MS
        tel.record_delivery(capture_ns, "lipsync", capture_ns + 120 * NS_PER_MS, 100 * NS_PER_MS)
    clock.set_ns(start + (49 * 40 + 120) * NS_PER_MS)
    assert tel.current_fps() == pytest.approx(25.0)
    assert tel.summary()["av_offset_ms"]["p50"] == pytest.approx(20.0)  # the picture 20 ms after its sound
    clock.advance_ms(10_000.0)  # ten seconds without a frame, on the stream's clock
    assert tel.current_fps() == 0.0


def _speech(seconds: float, level: float, seed: int = 0) -> np.ndarray:
    """Noise bursts at syllable rate with pauses, loud frames at about `level` RMS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    return (level * 1.4 * envelope * rng.standard_normal(t.size)).astype(np.float32)


def test_speech_level_brings_quiet_and_loud_speech_to_the_target() -> None:
    cfg = SpeechLevelConfig()
    for level in (0.05, 0.5):  # within the gain limits (x4 .. x0.25)
        out = SpeechLevel(16000, cfg)(_speech(8.0, level))
        frames = out[-4 * 16000 :].reshape(-1, 320)
        loud = np.percentile(np.sqrt((frames**2).mean(1)), 90)
        assert loud == pytest.approx(cfg.target_rms, rel=0.35), level


def test_speech_level_leaves_a_quiet_room_alone_and_ignores_chunking() -> None:
    room = (0.003 * np.random.default_rng(1).standard_normal(16000 * 3)).astype(np.float32)
    level = SpeechLevel(16000)
    assert np.array_equal(level(room), room)  # below the gate: gain stays 1
    speech = _speech(3.0, 0.05)
    whole = SpeechLevel(16000)(speech)
    chunked = SpeechLevel(16000)
    parts = [chunked(speech[k : k + 333]) for k in range(0, len(speech), 333)]
    assert np.allclose(np.concatenate(parts), whole)
