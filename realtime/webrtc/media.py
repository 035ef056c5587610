"""The two tracks a session sends back, both on the session's clock (`epoch_ns`).

- `DelayedAudioTrack`: the caller's audio through a delay line: the 20 ms frame due at
  `epoch + n*20 ms` (pts n*960 at 48 kHz) carries the audio captured `sync_delay_ns` earlier.
  aiortc's receiver holds audio back by a fixed prefetch of 4 packets (80 ms); the server's own
  receivers hold it one packet (`hold_audio_one_packet`), so audio "captured" at
  `arrival - held packets` pairs with video arriving at that instant. Silence fills gaps, and a
  backlog beyond `MAX_BACKLOG_FRAMES` is dropped: latency never grows.
- `ProcessedVideoTrack`: processed frames in order (a bounded drop-oldest `Channel`: when the
  encoder lags, the oldest waiting frame goes, reported to `on_dropped`); pts = (capture - epoch
  + sync delay) at 90 kHz (capture: arrival less the receiver's hold, `VideoHold`), the RTP
  time of the audio captured with it, which is what lets a
  browser play the two in sync from the RTCP sender reports. A frame's true hand-off is when
  aiortc's sender, having encoded and sent it, asks for the next one: reported to `on_sent`.

Both follow `MediaStreamTrack.recv()`: pts and time_base set, `MediaStreamError` once stopped.
Both read time from a `PacingClock` (the system's by default), so a test can drive their pacing.
"""

from __future__ import annotations

import collections
import fractions
from collections.abc import Callable

import av
import numpy as np
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from numpy.typing import NDArray

from stablesync.realtime.pipeline.clock import PacingClock, SystemClock
from stablesync.realtime.pipeline.slots import Channel
from stablesync.realtime.webrtc.processing import ProcessedFrame

AUDIO_RATE_HZ = 48_000
AUDIO_FRAME_SAMPLES = 960  # 20 ms
AUDIO_FRAME_NS = 20_000_000
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE_HZ)
VIDEO_CLOCK_HZ = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
# aiortc reads a video frame's pts back after PyAV's encoder has rebased it, in place, to the
# codec's microsecond time base, and converts it to 90 kHz again by truncation: a pts that is not
# a whole number of microseconds comes back one tick low, so frames one tick apart could share an
# RTP timestamp, which the receiver's jitter buffer joins into one frame (the second one is lost
# and the picture breaks up until the next keyframe). Video pts are multiples of 9 ticks (100 us:
# exact in microseconds), consecutive ones at least that far apart.
VIDEO_PTS_STEP = 9
MAX_PENDING_AUDIO_FRAMES = 150  # 3 s of input waiting for its delay to pass
MAX_BACKLOG_FRAMES = 2  # 40 ms of released audio not yet sent
AIORTC_AUDIO_PREFETCH_PACKETS = 4  # aiortc.rtcrtpreceiver: JitterBuffer(capacity=16, prefetch=4)
# a jitter buffer without prefetch still hands a packet on only when the next one arrives
SERVER_AUDIO_HELD_PACKETS = 1
MAX_VIDEO_QUEUE = 3
Int16Array = NDArray[np.int16]
FrameSent = Callable[[ProcessedFrame, int, int], None]  # (frame, returned_ns, sent_ns)
FrameDropped = Callable[[ProcessedFrame], None]


class DelayedAudioTrack(MediaStreamTrack):  # type: ignore[misc]
    kind = "audio"

    def __init__(
        self,
        epoch_ns: int,
        clock: PacingClock | None = None,
        held_packets: int = AIORTC_AUDIO_PREFETCH_PACKETS,
    ) -> None:
        super().__init__()
        self.epoch_ns = epoch_ns
        self.clock = clock if clock is not None else SystemClock()
        self.sync_delay_ns = 0  # audio and video leave this long after capture; >= receive_delay_ns
        self.held_packets = held_packets  # how many packets the receiver holds audio back
        self.receive_delay_ns = held_packets * AUDIO_FRAME_NS
        self._pending: collections.deque[tuple[int, Int16Array]] = collections.deque(
            maxlen=MAX_PENDING_AUDIO_FRAMES
        )
        self._fifo = np.zeros(0, dtype=np.int16)
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_RATE_HZ)
        self._next_index: int | None = None
        self.frames_sent = 0
        self.samples_dropped = 0

    def push(self, frame: av.AudioFrame, arrival_ns: int) -> None:
        """Queues one frame of the caller's audio (any format/rate) received at `arrival_ns`."""
        self.receive_delay_ns = receive_delay_ns(frame, self.held_packets)
        capture_ns = arrival_ns - self.receive_delay_ns
        for out in self._resampler.resample(frame):
            self._pending.append((capture_ns, out.to_ndarray().reshape(-1).astype(np.int16)))

    def _release(self, now_ns: int) -> None:
        cutoff_ns = now_ns - self.sync_delay_ns
        chunks = [self._fifo]
        while self._pending and self._pending[0][0] <= cutoff_ns:
            chunks.append(self._pending.popleft()[1])
        self._fifo = np.concatenate(chunks) if len(chunks) > 1 else self._fifo
        excess = self._fifo.size - MAX_BACKLOG_FRAMES * AUDIO_FRAME_SAMPLES
        if excess > 0:
            self.samples_dropped += excess
            self._fifo = self._fifo[excess:]

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now_ns = self.clock.monotonic_ns()
        if self._next_index is None:
            self._next_index = max(0, -(-(now_ns - self.epoch_ns) // AUDIO_FRAME_NS))
        due_ns = self.epoch_ns + self._next_index * AUDIO_FRAME_NS
        if now_ns - due_ns > 5 * AUDIO_FRAME_NS:  # the loop stalled: skip ahead, stay real time
            self._next_index = (now_ns - self.epoch_ns) // AUDIO_FRAME_NS
            due_ns = self.epoch_ns + self._next_index * AUDIO_FRAME_NS
        if due_ns > now_ns:
            await self.clock.sleep((due_ns - now_ns) / 1e9)
        if self.readyState != "live":
            raise MediaStreamError
        self._release(due_ns)
        samples = self._fifo[:AUDIO_FRAME_SAMPLES]
        self._fifo = self._fifo[AUDIO_FRAME_SAMPLES:]
        if samples.size < AUDIO_FRAME_SAMPLES:
            samples = np.concatenate([samples, np.zeros(AUDIO_FRAME_SAMPLES - samples.size, np.int16)])
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE_HZ
        frame.pts = self._next_index * AUDIO_FRAME_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        self._next_index += 1
        self.frames_sent += 1
        return frame


class ProcessedVideoTrack(MediaStreamTrack):  # type: ignore[misc]
    kind = "video"

    def __init__(
        self,
        epoch_ns: int,
        audio: DelayedAudioTrack,
        on_sent: FrameSent,
        on_dropped: FrameDropped,
        clock: PacingClock | None = None,
    ) -> None:
        super().__init__()
        self.epoch_ns = epoch_ns
        self.clock = clock if clock is not None else SystemClock()
        self._audio = audio
        self._on_sent = on_sent
        self._on_dropped = on_dropped
        self._queue: Channel[ProcessedFrame] = Channel(MAX_VIDEO_QUEUE, blocking=False)
        self._ended = False
        self._last_pts = -VIDEO_PTS_STEP
        self._handed: tuple[ProcessedFrame, int] | None = None  # the frame being sent, when returned

    def push(self, processed: ProcessedFrame) -> None:
        """Queues a processed frame; when the encoder lags, the oldest queued frame is dropped."""
        if self._ended:
            return
        dropped = self._queue.put_nowait(processed)
        if dropped is not None:
            self._on_dropped(dropped)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.end_nowait()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._handed is not None:  # aiortc's sender encoded and sent that one, now asks again
            handed, returned_ns = self._handed
            self._handed = None
            self._on_sent(handed, returned_ns, self.clock.monotonic_ns())
        processed = await self._queue.get()
        if processed is None:
            self._queue.end_nowait()  # every later call ends too
            self.stop()
            raise MediaStreamError
        frame = processed.frame
        pts = (
            (processed.capture_ns - self.epoch_ns + self._audio.sync_delay_ns)
            * VIDEO_CLOCK_HZ
            // 1_000_000_000
        )
        pts = max(pts - pts % VIDEO_PTS_STEP, self._last_pts + VIDEO_PTS_STEP)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TIME_BASE
        self._handed = (processed, self.clock.monotonic_ns())
        return frame


class StalenessFilter:
    """Spots received frames that waited in aiortc's decode queue (unbounded) while the loop was
    busy. A frame's delay is its arrival minus its RTP (capture) time; the floor is the smallest
    delay seen (allowed to creep up by `DRIFT_NS_PER_FRAME` per frame, for clock drift). A frame
    is stale when its delay exceeds the accepted level by `STALE_NS`; a delay that persists for
    `MAX_CONSECUTIVE` frames becomes the accepted level (so an overloaded server still passes
    some frames on), but never beyond `floor + MAX_BACKLOG_NS`: latency cannot grow without bound."""

    STALE_NS = 120_000_000
    MAX_BACKLOG_NS = 1_000_000_000
    DRIFT_NS_PER_FRAME = 100_000
    MAX_CONSECUTIVE = 4

    def __init__(self) -> None:
        self._floor_ns: int | None = None
        self._accepted_ns = 0
        self._consecutive = 0
        self.stale = 0

    def is_stale(self, frame: av.VideoFrame, arrival_ns: int) -> bool:
        if frame.pts is None or frame.time_base is None:
            return False
        delay_ns = arrival_ns - int(frame.pts * frame.time_base * 1_000_000_000)
        if self._floor_ns is None or delay_ns < self._floor_ns:
            self._floor_ns = delay_ns
        else:
            self._floor_ns += self.DRIFT_NS_PER_FRAME
        self._accepted_ns = max(self._accepted_ns, self._floor_ns)
        if delay_ns <= self._accepted_ns + self.STALE_NS:
            self._consecutive = 0
            self._accepted_ns = max(self._floor_ns, min(self._accepted_ns, delay_ns))
            return False
        self._consecutive += 1
        if self._consecutive > self.MAX_CONSECUTIVE and delay_ns <= self._floor_ns + self.MAX_BACKLOG_NS:
            self._accepted_ns, self._consecutive = delay_ns, 0
            return False
        self.stale += 1
        return True


class CaptureTimes:
    """Capture times of a received track's frames on this server's clock, from their RTP times.

    A frame's arrival (less what the receiver held it back) is its capture time plus the
    transport's delay; that delay is smallest for frames that came straight through and larger
    for frames that waited (the event loop stalled, the network queued). The floor of
    `estimate - pts` over the frames so far (allowed to creep up by `DRIFT_NS_PER_FRAME` per
    frame, for clock drift and a path that became slower) is the straight-through delay, so
    `pts + floor` stamps a frame that waited where it belongs in the stream instead of as late
    as it arrived; otherwise a burst after a stall reads as a gap, which the mel timeline fills
    with silence and then runs ahead of the video by the stall's length."""

    DRIFT_NS_PER_FRAME = 100_000

    def __init__(self) -> None:
        self._floor_ns: int | None = None

    def capture_ns(self, frame: av.AudioFrame | av.VideoFrame, estimate_ns: int) -> int:
        """`estimate_ns`: the frame's capture time as its arrival tells it."""
        if frame.pts is None or frame.time_base is None:
            return estimate_ns
        pts_ns = int(frame.pts * frame.time_base * 1_000_000_000)
        offset_ns = estimate_ns - pts_ns
        if self._floor_ns is None or offset_ns < self._floor_ns:
            self._floor_ns = offset_ns
        else:
            self._floor_ns += self.DRIFT_NS_PER_FRAME
        return pts_ns + self._floor_ns


class VideoHold:
    """How long aiortc's receiver held each received video frame back: its jitter buffer knows a
    frame is complete only when the first packet of the next one arrives (it does not read the
    RTP marker bit), so a frame is handed on one frame interval after it was sent. The interval
    is taken from the RTP times of this frame and the one before (the next one's is not known
    yet), at most `MAX_HOLD_NS`; none for the first frame. Arrival less this hold pairs the frame
    with the audio captured with it, as `receive_delay_ns` does for audio."""

    MAX_HOLD_NS = 100_000_000

    def __init__(self) -> None:
        self._last_pts_ns: int | None = None

    def hold_ns(self, frame: av.VideoFrame) -> int:
        if frame.pts is None or frame.time_base is None:
            return 0
        pts_ns = int(frame.pts * frame.time_base * 1_000_000_000)
        last, self._last_pts_ns = self._last_pts_ns, pts_ns
        return 0 if last is None else min(max(0, pts_ns - last), self.MAX_HOLD_NS)


def receive_delay_ns(frame: av.AudioFrame, held_packets: int = AIORTC_AUDIO_PREFETCH_PACKETS) -> int:
    """How long the receiver held a received audio frame back before handing it on:
    `held_packets` packets (a stock aiortc receiver: its prefetch), each as long as this frame."""
    return held_packets * int(frame.samples * 1e9 / frame.sample_rate)


def hold_audio_one_packet(receiver: RTCRtpReceiver) -> int:
    """Gives an audio receiver a jitter buffer without aiortc's 4-packet prefetch and returns the
    packets it now holds audio back (`SERVER_AUDIO_HELD_PACKETS`; the stock prefetch when the
    receiver is not laid out as this aiortc release lays it out, which changes nothing).

    The prefetch is slack for a player that renders audio at its own pace. The server's received
    audio feeds the mel timeline and the returned audio's delay line instead, which both place
    it by its capture time: the prefetch only made every frame's look-ahead window complete
    80 ms later, so each frame waited that long more. Call before the first packet arrives
    (from the peer connection's "track" event)."""
    name = "_RTCRtpReceiver__jitter_buffer"  # private: aiortc offers no setting for it
    stock = getattr(receiver, name, None)
    if not isinstance(stock, JitterBuffer) or stock._prefetch != AIORTC_AUDIO_PREFETCH_PACKETS:
        return AIORTC_AUDIO_PREFETCH_PACKETS
    setattr(receiver, name, JitterBuffer(capacity=stock.capacity, prefetch=0))
    return SERVER_AUDIO_HELD_PACKETS


async def recv_video(track: MediaStreamTrack) -> av.VideoFrame:
    """The next decoded video frame of a received track (MediaStreamError at its end)."""
    frame = await track.recv()
    if not isinstance(frame, av.VideoFrame):
        raise MediaStreamError(f"expected video frames, got {type(frame).__name__}")
    return frame


async def recv_audio(track: MediaStreamTrack) -> av.AudioFrame:
    """The next decoded audio frame of a received track (MediaStreamError at its end)."""
    frame = await track.recv()
    if not isinstance(frame, av.AudioFrame):
        raise MediaStreamError(f"expected audio frames, got {type(frame).__name__}")
    return frame
