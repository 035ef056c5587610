"""One peer: its RTCPeerConnection, the tasks that move its media, its pipeline, its stats.

Every task is owned by the session and cancelled (with a timeout) when it closes; video in is
latest-wins (a slow pipeline drops frames, it never queues them); the watchdog closes a peer
that never connects or stops sending media, so a stalled or vanished client frees its slot.
A returned frame is delivered when aiortc's sender has encoded and sent it: the pipeline's
telemetry records it then, the stats are read from that telemetry, and the returned audio's sync
delay follows it by the policy `run` follows too (`stablesync.realtime.pipeline.delivery.DelayFollower`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec

import av
import numpy as np
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from stablesync.realtime.pipeline.clock import PacingClock, SystemClock
from stablesync.realtime.pipeline.delivery import DelayFollower, DeliveryConfig
from stablesync.realtime.pipeline.frames import NS_PER_MS
from stablesync.realtime.pipeline.session import StageFailed
from stablesync.realtime.pipeline.tasks import cancel_and_wait
from stablesync.realtime.webrtc.candidates import CandidateReport
from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.media import (
    CaptureTimes,
    DelayedAudioTrack,
    ProcessedVideoTrack,
    StalenessFilter,
    VideoHold,
    hold_audio_one_packet,
    receive_delay_ns,
    recv_audio,
    recv_video,
)
from stablesync.realtime.webrtc.processing import PIPELINE_AUDIO_RATE_HZ, ProcessedFrame, SessionPipeline
from stablesync.realtime.webrtc.stats import STATS_CHANNEL, FinalStats, SessionStats

log = logging.getLogger(__name__)
STATS_PERIOD_S = 1.0
TASK_CANCEL_TIMEOUT_S = 1.0
P = ParamSpec("P")


def _weakly(method: Callable[P, None]) -> Callable[P, None]:
    """Calls `method` while its object lives; does nothing after (and does not keep it alive)."""
    ref = weakref.WeakMethod(method)

    def call(*args: P.args, **kwargs: P.kwargs) -> None:
        bound = ref()
        if bound is not None:
            bound(*args, **kwargs)

    return call


def ice_configuration(config: ServeConfig) -> RTCConfiguration:
    """The configured STUN/TURN servers; none by default, so nothing is contacted off the host."""
    servers = [
        RTCIceServer(urls=url, username=config.turn_username, credential=config.turn_password)
        if url.startswith("turn")
        else RTCIceServer(urls=url)
        for url in config.ice_servers
    ]
    return RTCConfiguration(iceServers=servers)


class PeerSession:
    def __init__(
        self,
        session_id: str,
        config: ServeConfig,
        pipeline: SessionPipeline,
        on_closed: Callable[[PeerSession], None],
        backend: str,  # shown to the peer: "passthrough" or the engine's backend
        clock: PacingClock | None = None,
        delivery: DeliveryConfig | None = None,  # the audio delay's rule (the default: `run`'s too)
    ) -> None:
        self.id = session_id
        self.clock = clock if clock is not None else SystemClock()
        self._config = config
        self._pipeline = pipeline
        self._on_closed = on_closed
        self.epoch_ns = self.clock.monotonic_ns()
        self.stats = SessionStats(session_id, pipeline.telemetry, started_ns=self.epoch_ns, backend=backend)
        self.pc = RTCPeerConnection(ice_configuration(config))
        self.audio_out = DelayedAudioTrack(self.epoch_ns, self.clock)
        # the track calls back weakly: otherwise the session and its track hold each other in a
        # reference cycle that outlives the close, keeping the returned audio's resampler (a
        # filter graph with a thread per core) until the garbage collector happens to run
        self.video_out = ProcessedVideoTrack(
            self.epoch_ns, self.audio_out, _weakly(self._frame_sent), _weakly(self._frame_dropped), self.clock
        )
        delivery = delivery if delivery is not None else DeliveryConfig()
        self.delay = DelayFollower(pipeline.telemetry, delivery, pipeline.budget_ms)
        self._follow_video_latency()
        self._tasks: set[asyncio.Task[None]] = set()
        self._channel: RTCDataChannel | None = None
        self._connected = False
        self._last_media_ns = self.epoch_ns
        self._inputs_open = 0
        self._close_task: asyncio.Task[None] | None = None
        self.close_reason: str | None = None

    # -- negotiation -------------------------------------------------------------------------
    async def answer(
        self, sdp: str, type_: str, candidates: CandidateReport | None = None
    ) -> RTCSessionDescription:
        """Applies the peer's offer (its candidates already filtered, as `candidates` reports)
        and returns our answer (raises on a malformed offer)."""
        if candidates is not None:
            self.stats.candidates = candidates
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_connection_state)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type_))
        kinds = {t.kind for t in self.pc.getTransceivers()}
        if not kinds & {"audio", "video"}:
            raise ValueError("the offer has no audio or video to lip-sync")
        if "video" in kinds:
            self.pc.addTrack(self.video_out)
        if "audio" in kinds:
            self.pc.addTrack(self.audio_out)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self._spawn(self._send_video())
        self._spawn(self._report_and_watch())
        local = self.pc.localDescription
        return RTCSessionDescription(sdp=local.sdp, type=local.type)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._inputs_open += 1
        if track.kind == "video":
            self._spawn(self._receive_video(track))
        elif track.kind == "audio":
            for transceiver in self.pc.getTransceivers():
                if transceiver.receiver.track is track:
                    self.audio_out.held_packets = hold_audio_one_packet(transceiver.receiver)
            self._spawn(self._receive_audio(track))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label == STATS_CHANNEL:
            self._channel = channel

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            self._connected = True
            self._last_media_ns = self.clock.monotonic_ns()
        elif state in ("failed", "closed"):
            self.request_close(f"connection {state}")

    # -- media -------------------------------------------------------------------------------
    async def _receive_video(self, track: MediaStreamTrack) -> None:
        staleness = StalenessFilter()
        hold = VideoHold()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await recv_video(track)
                now_ns = self.clock.monotonic_ns()
                self._last_media_ns = now_ns
                self.stats.frame_in(now_ns)
                if staleness.is_stale(frame, now_ns):
                    self.stats.dropped_frames += 1  # queued behind others while we were busy: skip
                    continue
                # the capture-equivalent time, as for audio: the receiver held the frame back
                await self._pipeline.push_video(frame, now_ns - hold.hold_ns(frame))
        await self._pipeline.end()
        self._input_ended()

    async def _receive_audio(self, track: MediaStreamTrack) -> None:
        to_pipeline = av.AudioResampler(format="flt", layout="mono", rate=PIPELINE_AUDIO_RATE_HZ)
        capture_times = CaptureTimes()
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await recv_audio(track)
                now_ns = self.clock.monotonic_ns()
                self._last_media_ns = now_ns
                floor_ns = self.audio_out.receive_delay_ns
                self.audio_out.push(frame, now_ns)
                if self.audio_out.receive_delay_ns != floor_ns:
                    self._follow_video_latency()  # the delay never stays below the new floor
                # the audio's capture-equivalent time: the receiver held it back (media.py)
                held_ns = receive_delay_ns(frame, self.audio_out.held_packets)
                arrived_ns = now_ns - held_ns - int(frame.samples * 1e9 / frame.sample_rate)
                start_ns = capture_times.capture_ns(frame, arrived_ns)
                for chunk in to_pipeline.resample(frame):
                    self._pipeline.push_audio(chunk.to_ndarray().reshape(-1).astype(np.float32), start_ns)
        self._input_ended()

    def _input_ended(self) -> None:
        self._inputs_open -= 1
        if self._inputs_open <= 0:
            self.request_close("the peer's tracks ended")

    async def _send_video(self) -> None:
        while True:
            try:
                result = await self._pipeline.next_frame()
            except StageFailed as exc:
                log.error("session %s: %s", self.id, exc)
                self.request_close(f"the lip-sync pipeline failed ({exc})")
                break
            if result is None:
                break
            self.video_out.push(result)
        self.video_out.end()

    def _frame_sent(self, frame: ProcessedFrame, returned_ns: int, sent_ns: int) -> None:
        """The frame's true hand-off: aiortc's sender has encoded and sent it."""
        self.stats.frame_encoded(returned_ns, sent_ns)
        self._pipeline.delivered(frame, sent_ns, self.audio_out.sync_delay_ns)
        self._follow_video_latency()

    def _frame_dropped(self, frame: ProcessedFrame) -> None:
        """The encoder lagged: the oldest frame waiting for it was dropped."""
        del frame
        self._pipeline.telemetry.count("frames_dropped")

    async def _report_and_watch(self) -> None:
        while True:
            await asyncio.sleep(STATS_PERIOD_S)
            channel = self._channel
            if channel is not None and channel.readyState == "open":
                channel.send(self.stats.encode(self._pipeline.figures()))
            idle_s = (self.clock.monotonic_ns() - self._last_media_ns) / 1e9
            if not self._connected and idle_s > self._config.connect_timeout_s:
                self.request_close("the peer never connected")
            elif self._connected and idle_s > self._config.idle_timeout_s:
                self.request_close(f"no media for {idle_s:.1f} s")

    def _follow_video_latency(self) -> None:
        """Sets the A/V sync delay (both returned tracks leave this long after capture) by the
        stream's delay policy: the video's recent median latency including its encoding, never
        below the audio's own receive delay."""
        delay_ns = self.delay.follow(floor_ns=self.audio_out.receive_delay_ns)
        self.stats.sync_delay_ms = delay_ns / NS_PER_MS
        self.audio_out.sync_delay_ns = delay_ns

    def final_stats(self) -> FinalStats:
        return self.stats.final(self._pipeline.figures(), self.close_reason)

    # -- closing -----------------------------------------------------------------------------
    def request_close(self, reason: str) -> None:
        if self._close_task is None:
            self.close_reason = reason
            self._close_task = asyncio.get_running_loop().create_task(self._close(reason))

    async def close(self, reason: str = "closed") -> None:
        """Idempotent: stops the tracks, cancels every task, closes the peer connection."""
        self.request_close(reason)
        assert self._close_task is not None
        await asyncio.shield(self._close_task)

    async def _close(self, reason: str) -> None:
        log.info("session %s: closing (%s)", self.id, reason)
        self.video_out.end()
        self.audio_out.stop()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        await cancel_and_wait(tasks, TASK_CANCEL_TIMEOUT_S, log, f"session {self.id}")
        await self._close_part("peer connection", self.pc.close(), self._config.shutdown_timeout_s)
        await self._close_part("pipeline", self._pipeline.aclose(), TASK_CANCEL_TIMEOUT_S)
        self._on_closed(self)

    async def _close_part(self, what: str, closing: Awaitable[None], timeout_s: float) -> None:
        """Awaits one part's close; a part that hangs or fails is logged (with its traceback when
        it raised) and the session's close goes on: closing must always finish."""
        try:
            await asyncio.wait_for(closing, timeout=timeout_s)
        except TimeoutError:
            log.warning("session %s: %s did not close within %.1f s", self.id, what, timeout_s)
        except Exception:  # any failure of a third-party close: logged, never raised from here
            log.exception("session %s: %s failed to close", self.id, what)
