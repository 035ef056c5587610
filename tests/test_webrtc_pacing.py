"""The returned tracks' pacing (realtime/webrtc/media.py) on a clock the test moves: the audio
track releases one 20 ms frame per 20 ms of the clock, each carrying the audio captured the
sync delay earlier, skips ahead after a stall instead of bursting, and drops a backlog; the
video track stamps frames on the audio's time line, drops the oldest when the encoder lags and
reports each frame's hand-off when aiortc's sender has encoded and sent it. No sleeping."""

from __future__ import annotations

import itertools

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError

from stablesync.realtime.pipeline.frames import NS_PER_MS
from stablesync.realtime.webrtc.media import (
    AIORTC_AUDIO_PREFETCH_PACKETS,
    AUDIO_FRAME_NS,
    AUDIO_FRAME_SAMPLES,
    AUDIO_RATE_HZ,
    MAX_VIDEO_QUEUE,
    DelayedAudioTrack,
    ProcessedVideoTrack,
    receive_delay_ns,
)
from stablesync.realtime.webrtc.processing import ProcessedFrame
from tests.fake_clock import FakeClock

SYNC_DELAY_MS = 100


def audio_frame(value: int) -> av.AudioFrame:
    """20 ms of 48 kHz mono audio holding one constant sample value (its label)."""
    samples = np.full((1, AUDIO_FRAME_SAMPLES), value, np.int16)
    frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
    frame.sample_rate = AUDIO_RATE_HZ
    return frame


def label(frame: av.AudioFrame) -> int:
    values = np.unique(frame.to_ndarray())
    assert values.size == 1, values  # never two captured frames (or silence) mixed in one
    return int(values[0])


async def test_audio_is_paced_by_the_clock_and_delayed_by_the_sync_delay() -> None:
    clock = FakeClock()
    epoch = clock.monotonic_ns()
    track = DelayedAudioTrack(epoch, clock)
    track.sync_delay_ns = SYNC_DELAY_MS * int(NS_PER_MS)
    receive_ms = track.receive_delay_ns // int(NS_PER_MS)  # aiortc holds the caller's audio back
    for i in range(20):  # frame i arrives (i + 1) * 20 ms + receive delay after the epoch
        track.push(audio_frame(1000 + i), epoch + ((i + 1) * 20 + receive_ms) * int(NS_PER_MS))
    out = [await track.recv() for _ in range(12)]
    assert [f.pts for f in out] == [n * AUDIO_FRAME_SAMPLES for n in range(12)]
    assert clock.monotonic_ns() - epoch == 11 * AUDIO_FRAME_NS  # one frame per 20 ms of the clock
    # frame i was captured 20 * (i + 1) ms after the epoch: it leaves SYNC_DELAY_MS later
    labels = [label(f) for f in out]
    first = (SYNC_DELAY_MS + 20) // 20
    assert labels[:first] == [0] * first  # silence until the first audio is due
    assert labels[first:] == [1000 + i for i in range(12 - first)]


async def test_audio_skips_ahead_after_a_stall_and_drops_the_backlog() -> None:
    clock = FakeClock()
    epoch = clock.monotonic_ns()
    track = DelayedAudioTrack(epoch, clock)
    track.sync_delay_ns = track.receive_delay_ns
    for i in range(40):
        track.push(audio_frame(1000 + i), epoch + (i * 20 + 80) * int(NS_PER_MS))
    await track.recv()
    clock.advance_ms(300.0)  # the event loop stalled for 15 frames' time
    after = await track.recv()
    assert after.pts == 15 * AUDIO_FRAME_SAMPLES  # real time again, no burst of 15 late frames
    assert track.samples_dropped > 0  # the audio released meanwhile did not pile up
    assert label(await track.recv()) == label(after) + 1  # then in order


def video_frame(arrival_ns: int) -> ProcessedFrame:
    picture = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
    return ProcessedFrame(picture, arrival_ns, "passthrough")


class HandOffs:
    """What the track reports: frames sent (with when they were returned and sent), dropped."""

    def __init__(self) -> None:
        self.sent: list[tuple[ProcessedFrame, int, int]] = []
        self.dropped: list[ProcessedFrame] = []

    def on_sent(self, frame: ProcessedFrame, returned_ns: int, sent_ns: int) -> None:
        self.sent.append((frame, returned_ns, sent_ns))

    def track(self, epoch_ns: int, audio: DelayedAudioTrack, clock: FakeClock) -> ProcessedVideoTrack:
        return ProcessedVideoTrack(epoch_ns, audio, self.on_sent, self.dropped.append, clock)


async def test_video_is_stamped_on_the_audio_time_line_and_measured_after_encoding() -> None:
    clock = FakeClock()
    epoch = clock.monotonic_ns()
    audio = DelayedAudioTrack(epoch, clock)
    audio.sync_delay_ns = SYNC_DELAY_MS * int(NS_PER_MS)
    hand_offs = HandOffs()
    track = hand_offs.track(epoch, audio, clock)
    clock.advance_ms(40.0)
    arrival = clock.monotonic_ns()  # 40 ms after the epoch
    clock.advance_ms(150.0)  # in the pipeline
    first = video_frame(arrival)
    track.push(first)
    frame = await track.recv()
    assert frame is first.frame and frame.pts == (40 + SYNC_DELAY_MS) * 90  # 90 kHz: arrival + sync delay
    returned = clock.monotonic_ns()
    assert hand_offs.sent == []  # not yet sent
    clock.advance_ms(12.0)  # aiortc encodes and sends it, then asks for the next
    track.push(video_frame(arrival + 40 * int(NS_PER_MS)))
    await track.recv()
    assert hand_offs.sent == [(first, returned, returned + 12 * int(NS_PER_MS))]  # encoded and sent


async def test_video_drops_the_oldest_frame_when_the_encoder_lags_then_ends() -> None:
    clock = FakeClock()
    epoch = clock.monotonic_ns()
    hand_offs = HandOffs()
    track = hand_offs.track(epoch, DelayedAudioTrack(epoch, clock), clock)
    frames = [video_frame(epoch + i * 40 * int(NS_PER_MS)) for i in range(MAX_VIDEO_QUEUE + 2)]
    for frame in frames:
        track.push(frame)
    assert hand_offs.dropped == frames[:2]  # the oldest
    pts = [(await track.recv()).pts for _ in range(MAX_VIDEO_QUEUE)]
    assert pts == [(2 + i) * 40 * 90 for i in range(MAX_VIDEO_QUEUE)]  # the newest, in order
    track.end()
    track.push(video_frame(epoch))  # after the end: ignored
    with pytest.raises(MediaStreamError):
        await track.recv()


async def test_late_frames_keep_distinct_rtp_timestamps_through_aiortc_s_encoder() -> None:
    """Frames handed on late share a capture-based pts and are spread out by the track; aiortc's
    VP8 encoder gives each its RTP timestamp from the pts PyAV has rebased to microseconds, so
    each must survive that round trip: two frames on one timestamp are joined into one by the
    receiver (the second lost, the picture broken until the next keyframe)."""
    from aiortc.codecs.vpx import Vp8Encoder

    clock = FakeClock()
    epoch = clock.monotonic_ns()
    track = HandOffs().track(epoch, DelayedAudioTrack(epoch, clock), clock)
    encoder = Vp8Encoder()
    capture = epoch + 3_914_211_111  # a pts that is not a whole number of microseconds
    stamps = []
    for _ in range(12):  # a burst handed on at once, all from about the same capture time
        track.push(video_frame(capture))
        frame = await track.recv()
        stamps.append(encoder.encode(frame.reformat(format="yuv420p"))[1])
    assert all(b > a for a, b in itertools.pairwise(stamps)), stamps


async def test_the_receive_delay_is_aiortc_s_audio_prefetch() -> None:
    """The sync takes a received audio frame to have been held back by aiortc's jitter buffer
    prefetch (not a public setting): read here from a real aiortc receiver, so an aiortc
    release that changes it fails this test instead of shifting the audio."""
    from aiortc import RTCCertificate
    from aiortc.rtcdtlstransport import RTCDtlsTransport
    from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    transport = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("audio", transport)
    try:
        assert receiver._RTCRtpReceiver__jitter_buffer._prefetch == AIORTC_AUDIO_PREFETCH_PACKETS
    finally:
        await receiver.stop()
        await transport.stop()
    assert receive_delay_ns(audio_frame(0)) == AIORTC_AUDIO_PREFETCH_PACKETS * AUDIO_FRAME_NS
