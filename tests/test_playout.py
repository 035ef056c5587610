"""The virtual microphone's playout: what the callback plays, what the writer may never wait
for, and when a new stream counts as playing (the PulseAudio run is in
tests/test_realtime_audio_io.py)."""

from __future__ import annotations

import numpy as np

from stablesync.realtime.local.sinks.playout import PlayingDetector, PlayoutBuffer


def test_the_callback_plays_the_queue_in_order_then_silence() -> None:
    buf = PlayoutBuffer(channels=2, capacity_frames=100)
    a = np.arange(10, dtype=np.float32).reshape(5, 2) + 1
    buf.write(a)
    buf.write(a + 100)
    out = np.full((8, 2), -1, dtype=np.float32)
    buf.fill(out)
    np.testing.assert_array_equal(out[:5], a)
    np.testing.assert_array_equal(out[5:], (a + 100)[:3])
    out = np.full((8, 2), -1, dtype=np.float32)
    buf.fill(out)
    np.testing.assert_array_equal(out[:2], (a + 100)[3:])
    assert not out[2:].any()  # nothing queued: silence, not what was there
    assert (buf.frames_written, buf.frames_played, buf.queued_frames) == (10, 10, 0)
    assert buf.wait_empty(0.0)


def test_a_writer_never_waits_the_oldest_audio_is_dropped_beyond_capacity() -> None:
    buf = PlayoutBuffer(channels=1, capacity_frames=30)
    for k in range(5):  # nobody plays: 50 frames for a 30-frame queue
        buf.write(np.full(10, k, dtype=np.float32))
    assert buf.queued_frames == 30 and buf.frames_dropped == 20
    assert not buf.wait_empty(0.0)
    out = np.zeros((30, 1), dtype=np.float32)
    buf.fill(out)
    np.testing.assert_array_equal(out[:, 0], np.repeat([2.0, 3.0, 4.0], 10))  # the newest kept


def test_a_starved_stream_restarts_behind_a_cushion_and_a_late_writer_within_it_is_not_heard() -> None:
    """4-frame callbacks, 4-frame blocks, a 6-frame cushion: the first block plays behind the
    cushion; blocks handed over late, two at once, play on without a gap while the queue lasts;
    once it runs dry (two callbacks with nothing written) the gap is counted and the next block
    plays behind a new cushion. Without the cushion every late hand-off would be a gap."""
    buf = PlayoutBuffer(channels=1, capacity_frames=100, cushion_frames=6)
    played: list[np.ndarray] = []

    def callback() -> None:
        out = np.full((4, 1), -1, dtype=np.float32)
        buf.fill(out)
        played.append(out[:, 0].copy())

    callback()  # the stream plays silence before anything is written: not a gap
    buf.write(np.full(4, 1, dtype=np.float32))
    callback()
    buf.write(np.full(4, 2, dtype=np.float32))
    callback()
    callback()  # block 3 is a callback late: the cushion covers it
    buf.write(np.full(4, 3, dtype=np.float32))
    buf.write(np.full(4, 4, dtype=np.float32))
    assert buf.gaps == 0
    for _ in range(4):  # nothing written for two callbacks past the queue: the stream runs dry
        callback()
    assert buf.gaps == 0  # counted when audio comes back, not at the end of a stream
    buf.write(np.full(4, 5, dtype=np.float32))
    assert buf.gaps == 1
    for _ in range(3):
        callback()
    expected = np.concatenate(
        [np.zeros(4 + 6), np.repeat([1, 2, 3, 4], 4), np.zeros(6 + 6), np.repeat([5], 4), np.zeros(2)]
    )
    np.testing.assert_array_equal(np.concatenate(played), expected)
    assert buf.frames_played == 20 and buf.frames_written == 20  # cushion silence not counted
    without = PlayoutBuffer(channels=1, capacity_frames=100)  # the same first steps, no cushion
    out = np.zeros((4, 1), dtype=np.float32)
    without.fill(out)
    without.write(np.full(4, 1, dtype=np.float32))
    without.fill(out)
    without.write(np.full(4, 2, dtype=np.float32))
    without.fill(out)
    without.fill(out)
    without.write(np.full(4, 3, dtype=np.float32))
    assert without.gaps == 1


def test_a_stream_plays_once_its_callbacks_come_at_their_own_rate() -> None:
    """As measured on PulseAudio's null sink: five pre-fill calls at once, a 1.26 s hold, then
    a 200-frame buffer every 12.5 ms at 16 kHz."""
    det = PlayingDetector(16_000)
    t_ns = 0
    for _ in range(5):
        t_ns += 100_000
        det.callback(200, t_ns)
    assert not det.playing.is_set()  # pre-fill is not playing
    det.callback(200, t_ns + 1_260_000_000)
    assert det.playing.is_set()  # the first buffer after the hold: it plays from now on


def test_a_stream_without_a_hold_plays_after_two_buffers_even_asked_in_bursts() -> None:
    for burst in (1, 2):  # PipeWire's pulse server may ask for two buffers at a time
        det = PlayingDetector(48_000)
        for k in range(3):
            det.callback(480, k * 1_000)  # pre-fill
        assert not det.playing.is_set()
        calls = 0
        while not det.playing.is_set() and calls < 8:  # `burst` buffers every burst x 10 ms
            t_ns = (calls // burst + 1) * burst * 10_000_000 + calls % burst * 1_000
            det.callback(480, t_ns)
            calls += 1
        assert det.playing.is_set() and calls <= 2, (burst, calls)
