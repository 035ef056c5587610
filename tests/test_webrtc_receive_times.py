"""When a received frame was captured, on the server's clock (realtime/webrtc/media.py, peer.py):
the server's audio receivers hand a packet on when the next one arrives (not after aiortc's
4-packet prefetch); audio that waited (a stall, a queue) is stamped by its RTP time, not as late
as it arrived; a video frame is stamped one frame interval before its arrival, the time aiortc's
receiver held it. Real aiortc receivers and peer connections, a fake clock, no sleeping."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from stablesync.realtime.pipeline.frames import NS_PER_MS
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.media import (
    AUDIO_FRAME_NS,
    SERVER_AUDIO_HELD_PACKETS,
    CaptureTimes,
    VideoHold,
)
from stablesync.realtime.webrtc.peer import PeerSession
from stablesync.realtime.webrtc.processing import PassthroughSession
from tests.fake_clock import FakeClock

VIDEO_TIME_BASE = fractions.Fraction(1, 90_000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48_000)


def audio_packet(index: int) -> RtpPacket:
    packet = RtpPacket(payload_type=111, sequence_number=index, timestamp=index * 960)
    packet._data = bytes([index])
    return packet


def audio_frame(index: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 960), np.int16), format="s16", layout="mono")
    frame.sample_rate = 48_000
    frame.pts, frame.time_base = index * 960, AUDIO_TIME_BASE
    return frame


def video_frame(index: int, interval_ms: float = 40.0) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
    frame.pts, frame.time_base = round(index * interval_ms * 90), VIDEO_TIME_BASE
    return frame


async def test_the_server_s_audio_receiver_hands_each_packet_on_when_the_next_arrives() -> None:
    """Through a real offer and answer: the session's audio receiver holds one packet, and the
    session's returned audio takes that as the receive delay (its sync floor)."""
    caller = RTCPeerConnection()
    caller.addTrack(AudioStreamTrack())
    await caller.setLocalDescription(await caller.createOffer())
    session = PeerSession("s", ServeConfig(port=0), PassthroughSession(), lambda _: None, "passthrough")
    try:
        await session.answer(caller.localDescription.sdp, "offer")
        (receiver,) = [t.receiver for t in session.pc.getTransceivers() if t.kind == "audio"]
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        assert isinstance(buffer, JitterBuffer)
        handed = [buffer.add(audio_packet(i))[1] for i in range(3)]
        assert handed[0] is None  # packet 0 is known complete when packet 1 arrives
        assert [f.timestamp if f else None for f in handed[1:]] == [0, 960]  # (stock: after 5)
        assert session.audio_out.held_packets == SERVER_AUDIO_HELD_PACKETS
        session.audio_out.push(audio_frame(0), 0)
        assert session.audio_out.receive_delay_ns == SERVER_AUDIO_HELD_PACKETS * AUDIO_FRAME_NS
    finally:
        await session.pc.close()
        await caller.close()


def test_audio_that_waited_is_stamped_where_it_belongs_in_the_stream() -> None:
    times = CaptureTimes()
    base_ns = 10**12
    arrival_delay_ns = 5 * int(NS_PER_MS)
    stamps = [
        times.capture_ns(audio_frame(i), base_ns + i * AUDIO_FRAME_NS + arrival_delay_ns) for i in range(10)
    ]
    # the loop stalled for 300 ms: frames 10..24 arrive together, then the stream runs on
    stalled = [
        times.capture_ns(audio_frame(i), base_ns + 24 * AUDIO_FRAME_NS + 300 * int(NS_PER_MS))
        for i in range(10, 25)
    ]
    after = [
        times.capture_ns(audio_frame(i), base_ns + i * AUDIO_FRAME_NS + arrival_delay_ns)
        for i in range(25, 30)
    ]
    steps = np.diff(stamps + stalled + after)
    # 20 ms apart throughout, not 300 ms apart at the stall (the floor creeps up 0.1 ms a
    # frame while frames arrive late, and drops back when one comes through again)
    assert np.all(np.abs(steps - AUDIO_FRAME_NS) <= 2 * int(NS_PER_MS))
    assert abs(stamps[0] - (base_ns + arrival_delay_ns)) == 0
    assert abs(after[-1] - (base_ns + 29 * AUDIO_FRAME_NS + arrival_delay_ns)) == 0
    # a frame that came through faster than all before it lowers the floor
    quick_ns = base_ns + 30 * AUDIO_FRAME_NS + int(NS_PER_MS)
    assert times.capture_ns(audio_frame(30), quick_ns) == quick_ns


def test_video_is_held_one_frame_interval_capped() -> None:
    hold = VideoHold()
    assert hold.hold_ns(video_frame(0)) == 0  # no interval known yet
    assert hold.hold_ns(video_frame(1)) == 40 * int(NS_PER_MS)
    assert hold.hold_ns(video_frame(3)) == 80 * int(NS_PER_MS)  # a frame the sender skipped
    assert hold.hold_ns(video_frame(60)) == VideoHold.MAX_HOLD_NS  # the sender paused


class PacedVideo(MediaStreamTrack):  # type: ignore[misc]
    """Frames at 25 fps on the fake clock, `count` of them."""

    kind = "video"

    def __init__(self, clock: FakeClock, count: int) -> None:
        super().__init__()
        self.clock, self.count, self.index = clock, count, 0
        self.arrivals_ns: list[int] = []

    async def recv(self) -> av.VideoFrame:
        if self.index >= self.count:
            raise MediaStreamError
        self.clock.advance_ms(40.0)
        self.arrivals_ns.append(self.clock.monotonic_ns())
        self.index += 1
        return video_frame(self.index - 1)


class StalledAudio(MediaStreamTrack):  # type: ignore[misc]
    """20 ms frames on the fake clock; frames 10..24 arrive together 300 ms late (a stall)."""

    kind = "audio"

    def __init__(self, clock: FakeClock, count: int) -> None:
        super().__init__()
        self.clock, self.count, self.index = clock, count, 0

    async def recv(self) -> av.AudioFrame:
        if self.index >= self.count:
            raise MediaStreamError
        if self.index == 10:
            self.clock.advance_ms(300.0 + 14 * 20.0)
        elif not 10 < self.index < 25:
            self.clock.advance_ms(20.0)
        self.index += 1
        return audio_frame(self.index - 1)


class Recording(PassthroughSession):
    def __init__(self) -> None:
        super().__init__()
        self.captures_ns: list[int] = []
        self.audio_ns: list[int] = []

    def push_audio(self, samples: np.ndarray, capture_ns: int) -> None:
        self.audio_ns.append(capture_ns)

    async def push_video(self, frame: av.VideoFrame, capture_ns: int) -> None:
        self.captures_ns.append(capture_ns)
        await super().push_video(frame, capture_ns)


async def test_the_session_hands_video_on_stamped_before_the_receiver_s_hold() -> None:
    clock = FakeClock()
    pipeline = Recording()
    session = PeerSession("s", ServeConfig(port=0), pipeline, lambda _: None, "passthrough", clock=clock)
    track = PacedVideo(clock, 5)
    try:
        session._inputs_open = 2  # the audio input stays open: the session does not close itself
        await session._receive_video(track)
        held_ns = [
            arrival - capture
            for arrival, capture in zip(track.arrivals_ns, pipeline.captures_ns, strict=True)
        ]
        assert held_ns == [0] + [40 * int(NS_PER_MS)] * 4
    finally:
        await session.pc.close()


async def test_the_session_stamps_audio_that_waited_by_its_rtp_time() -> None:
    clock = FakeClock()
    pipeline = Recording()
    session = PeerSession("s", ServeConfig(port=0), pipeline, lambda _: None, "passthrough", clock=clock)
    try:
        session._inputs_open = 2
        await session._receive_audio(StalledAudio(clock, 40))
        steps_ms = np.diff(sorted(set(pipeline.audio_ns))) / NS_PER_MS
        assert len(steps_ms) >= 30 and np.all(np.abs(steps_ms - 20.0) <= 2.0), steps_ms  # no 300 ms jump
    finally:
        await session.pc.close()
