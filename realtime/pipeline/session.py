"""One lip-sync stream: audio chunks and video frames in, composited frames and the audio out.

The reusable unit of the real-time path: `stablesync run` and `demo` drive one session from
local sources; the WebRTC server drives one per peer connection from aiortc tracks. Sessions
share an `InferenceBatcher` (one engine) and own everything else: two single-thread workers,
one tracking (the face follower's mesh) and one rendering (compositing, watermark; the
compositor's own mesh), so one frame is tracked while the one before it is composited and the
event loop only hands work over; the mel timeline; the telemetry.

Stages (asyncio tasks, each owned and cancelled with a timeout on `close`):
  audio:   bounded queue -> MelTimeline (+ the audio output channel)
  track:   latest-wins video slot -> face tracking and crop (track worker)
  infer:   waits for the frame's mel window until its deadline allows -> batcher
  finish:  awaits the generated crop -> compositing and watermark (render worker, `finish.py`)
           -> output channel
A stage task that itself raises (a bug: every live fault is caught inside the stages and
degrades to passthrough) ends the stream instead of stalling it: the outputs end and
`next_output` raises `StageFailed` naming the stage.
Live mode (`realtime=True`): every frame has a deadline (`capture_ns + budget`); a frame that
would miss it is passed through instead of queued, the stage channels drop their oldest item,
and tracking is skipped on alternate frames while frames are running late, so latency cannot
grow. Offline mode (`realtime=False`, `--fast`): no deadlines, nothing dropped, every frame
waits for its complete window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import numpy as np

from stablesync.export.engine import ReferenceFeatures
from stablesync.realtime.pipeline.audio_windows import MelTimeline, MelWindow, WindowConfig
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.clock import Clock
from stablesync.realtime.pipeline.faults import FaultLog
from stablesync.realtime.pipeline.finish import Finisher, FrameWork
from stablesync.realtime.pipeline.frames import (
    NS_PER_MS,
    NS_PER_S,
    AudioChunk,
    OutputFrame,
    VideoFrame,
)
from stablesync.realtime.pipeline.reference import mean_features, reference_views
from stablesync.realtime.pipeline.session_config import (
    SessionConfig as SessionConfig,  # re-exported: its public home
)
from stablesync.realtime.pipeline.slots import Channel, LatestSlot
from stablesync.realtime.pipeline.tasks import cancel_and_wait
from stablesync.realtime.pipeline.telemetry import Telemetry
from stablesync.realtime.pipeline.tracking import FaceFollower, FaceTrack, HeadPose
from stablesync.realtime.pipeline.worker import Worker

log = logging.getLogger(__name__)


class StageFailed(RuntimeError):
    """A stage task of the session raised: the stream cannot go on."""


class LipSyncSession:
    def __init__(
        self,
        batcher: InferenceBatcher,
        cfg: SessionConfig | None = None,
        name: str = "session",
        clock: Clock | None = None,
    ) -> None:
        cfg = cfg if cfg is not None else SessionConfig()
        # deadlines, waits and stage times are read from this clock (the batcher's by default)
        self.clock = clock if clock is not None else batcher.clock
        manifest = batcher.engine.manifest
        self.cfg = cfg
        self.name = name
        self.batcher = batcher
        self.size = manifest.image_size
        lookahead = manifest.lookahead_ms if cfg.lookahead_ms is None else cfg.lookahead_ms
        self.timeline = MelTimeline(
            WindowConfig(lookahead_ms=lookahead, window_frames=manifest.window_frames), manifest.mel
        )
        self.telemetry = Telemetry(clock=self.clock)
        self._faults = FaultLog(log, self.clock)
        self._finisher = Finisher(self.size, cfg, self.clock, self.telemetry, self._fault, name, log)
        self.telemetry.note(f"watermark run id {self._finisher.watermarker.run_id_hex}")
        # trackers are not thread-safe: each stays on one thread
        self._track_worker = Worker(f"{name}-track", log)
        self._follower = FaceFollower(self.size, cfg.tracking)
        live = cfg.realtime
        self._audio_in: asyncio.Queue[AudioChunk | None] = asyncio.Queue(maxsize=cfg.audio_queue_chunks)
        self._video_slot: LatestSlot[VideoFrame] | Channel[VideoFrame] = (
            LatestSlot() if live else Channel(1, blocking=True)
        )
        self._tracked: Channel[FrameWork] = Channel(cfg.stage_queue_frames, blocking=not live)
        self._submitted: Channel[FrameWork] = Channel(cfg.stage_queue_frames, blocking=not live)
        self._outputs: Channel[OutputFrame] = Channel(cfg.output_queue_frames, blocking=True)
        self._audio_out: Channel[AudioChunk] = Channel(cfg.audio_out_chunks, blocking=not live)
        self._audio_arrived = asyncio.Event()
        self._audio_ended = False
        # offline (--fast): the audio may not run further ahead of the video than half the mel
        # history, or the windows of frames still to come would already have left the ring
        self._video_progress = asyncio.Event()
        self._video_ns: int | None = None  # capture time of the newest frame taken from the slot
        self._video_ended = False
        self._features: ReferenceFeatures | None = None
        self._reference_pose: HeadPose | None = None
        self._drift_count = 0
        self._refresh: asyncio.Task[None] | None = None
        self._recent_late: list[bool] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._closing_parts: asyncio.Future[tuple[None, None]] | None = None
        self.failure: str | None = None  # set when a stage task raised
        self.bypass = False  # True: every frame passes through untouched (the user's pause)

    # --- feeding ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.batcher.start()
        await self.batcher.warmup()
        blank = VideoFrame(np.zeros((240, 320, 3), np.uint8), self.clock.monotonic_ns(), 0, -1)
        await self._track_worker.run(self._follower.track, blank)  # loads the tracker
        self.batcher.clients += 1
        for name, coro in (
            ("audio", self._audio_stage()),
            ("track", self._track_stage()),
            ("infer", self._infer_stage()),
            ("finish", self._finish_stage()),
        ):
            task = loop.create_task(coro, name=name)
            task.add_done_callback(self._stage_done)
            self._tasks.append(task)

    def _stage_done(self, task: asyncio.Task[None]) -> None:
        """Supervises the stages: one that raised ends both output channels, so nobody waits
        on a stream that can no longer move."""
        if task.cancelled() or task.exception() is None or self.failure is not None:
            return
        exc = task.exception()
        self.failure = f"{self.name}: the {task.get_name()} stage failed: {type(exc).__name__}: {exc}"
        self.telemetry.note(self.failure)
        self._outputs.end_nowait()
        self._audio_out.end_nowait()

    async def submit_audio(self, chunk: AudioChunk) -> None:
        """Waits while the audio queue is full (back-pressure to a file source)."""
        await self._audio_in.put(chunk)

    def offer_audio(self, chunk: AudioChunk) -> bool:
        """For live sources that cannot wait (a device callback): False when the queue was full
        and the chunk was dropped."""
        try:
            self._audio_in.put_nowait(chunk)
            return True
        except asyncio.QueueFull:
            self.telemetry.count("audio_chunks_dropped")
            return False

    async def submit_video(self, frame: VideoFrame) -> None:
        """Live: replaces a frame not yet taken (counted as dropped). Offline: waits for room."""
        self.telemetry.count("frames_in")
        if isinstance(self._video_slot, LatestSlot):
            if self._video_slot.put(frame):
                self.telemetry.count("frames_dropped")
        else:
            await self._video_slot.put(frame)

    async def end_audio(self) -> None:
        await self._audio_in.put(None)

    async def end_video(self) -> None:
        if isinstance(self._video_slot, LatestSlot):
            self._video_slot.end()
        else:
            await self._video_slot.put(None)

    # --- consuming --------------------------------------------------------------------

    async def next_output(self) -> OutputFrame | None:
        """The next processed frame in capture order; None after the video ended. Raises
        `StageFailed` instead when the outputs ended because a stage failed."""
        out = await self._outputs.get()
        if out is None and self.failure is not None:
            raise StageFailed(self.failure)
        return out

    async def next_audio(self) -> AudioChunk | None:
        """The input audio, undelayed, in order (drop-oldest when nobody reads it in live mode);
        None after the audio ended (or a stage failed), and at once without `cfg.audio_out`."""
        if not self.cfg.audio_out:
            return None
        return await self._audio_out.get()

    @property
    def budget_ms(self) -> float | None:
        """Each frame's deadline after its capture (None offline: no deadlines)."""
        return self.cfg.budget_ms if self.cfg.realtime else None

    def mark_delivered(
        self, out: OutputFrame, audio_delay_ns: int | None = None, handed_ns: int | None = None
    ) -> None:
        """Call at the frame's true hand-off (the sinks have it; aiortc has encoded and sent it),
        at `handed_ns` (None: now): records it in the telemetry with its latency and A/V offset
        against `audio_delay_ns`, what the audio output delays the audio by at that moment."""
        handed = self.clock.monotonic_ns() if handed_ns is None else handed_ns
        self.telemetry.record_output(out, handed, audio_delay_ns, latency=self.cfg.realtime)
        self._recent_late.append(out.mode == "late" or bool(out.deadline_ns and handed > out.deadline_ns))
        del self._recent_late[: -self.cfg.late_window_frames]

    async def close(self, timeout_s: float = 5.0) -> None:
        """Cancels the stages (waiting up to `timeout_s` for them), then closes the tracker and
        the compositor on their threads. The two closes start even when this is cancelled or
        times out at its caller (serve gives a peer's pipeline one second) and run to their end:
        a close cut off before the compositor's left its face mesh open for good."""
        tasks = [*self._tasks, *([self._refresh] if self._refresh else [])]
        try:
            await cancel_and_wait(tasks, timeout_s, log, self.name)
        finally:
            self._tasks.clear()
            self.batcher.clients = max(0, self.batcher.clients - 1)
            parts = asyncio.gather(
                self._track_worker.close(self._follower.close, timeout_s), self._finisher.close(timeout_s)
            )
            self._closing_parts = parts  # held, so a cancelled caller does not leave it unreferenced
            await asyncio.shield(parts)

    # --- stages -------------------------------------------------------------------------

    async def _hold_audio(self, chunk: AudioChunk) -> None:
        """Offline only: waits while `chunk` is further ahead of the video than half the history
        (and, before the first frame, until the video starts or ends)."""
        lead_ns = int(self.timeline.cfg.history_s / 2 * NS_PER_S)
        while not self._video_ended:
            if self._video_ns is not None and chunk.capture_ns - self._video_ns <= lead_ns:
                return
            self._video_progress.clear()
            await self._video_progress.wait()

    def _fault(self, stage: str, summary: str, exc: Exception) -> None:
        """A live fault: counted in the telemetry, logged with its traceback once per kind (then
        rate-limited); the frame or chunk it hit passes through."""
        self.telemetry.note(f"{summary}: {type(exc).__name__}: {exc}")
        self._faults.report(stage, exc)

    def _video_moved(self, frame: VideoFrame | None) -> None:
        if frame is None:
            self._video_ended = True
        else:
            self._video_ns = frame.capture_ns
        self._video_progress.set()

    async def _audio_stage(self) -> None:
        while True:
            chunk = await self._audio_in.get()
            if chunk is None:
                break
            if not self.cfg.realtime:
                await self._hold_audio(chunk)
            try:
                self.timeline.push(chunk)
            except Exception as exc:  # a malformed chunk: skip it, keep the stream
                self._fault("audio", "audio chunk skipped", exc)
                continue
            self._audio_arrived.set()
            if self.cfg.audio_out and await self._audio_out.put(chunk) is not None:
                self.telemetry.count("audio_out_dropped")
        self._audio_ended = True
        self._audio_arrived.set()
        await self._audio_out.put(None)

    def _skip_tracking(self, frame: VideoFrame) -> bool:
        late = sum(self._recent_late)
        return self.cfg.realtime and late >= 2 and frame.index % 2 == 1

    async def _track_stage(self) -> None:
        while True:
            frame = await self._video_slot.get()
            self._video_moved(frame)
            if frame is None:
                break
            deadline = frame.capture_ns + int(self.cfg.budget_ms * NS_PER_MS) if self.cfg.realtime else 0
            work = FrameWork(frame=frame, deadline_ns=deadline)
            t0 = self.clock.monotonic_ns()
            try:
                work.track = await self._track_worker.run(
                    self._follower.track, frame, self._skip_tracking(frame)
                )
                if work.track is None:
                    work.mode = "noface"
            except Exception as exc:
                self._fault("tracking", "tracking failed", exc)
                work.mode = "error"
            work.times["track_ms"] = (self.clock.monotonic_ns() - t0) / NS_PER_MS
            if await self._tracked.put(work) is not None:
                self.telemetry.count("frames_dropped")
        await self._tracked.put(None)

    async def _ensure_reference(self, track: FaceTrack) -> None:
        if self._features is None:
            await self._encode_reference(track)
            return
        assert self._reference_pose is not None
        if track.pose.distance(self._reference_pose) > self.cfg.reference_drift:
            self._drift_count += 1
        else:
            self._drift_count = 0
        if self._drift_count >= self.cfg.drift_frames and (self._refresh is None or self._refresh.done()):
            self._drift_count = 0
            self._refresh = asyncio.get_running_loop().create_task(self._encode_reference(track))

    async def _encode_reference(self, track: FaceTrack) -> None:
        views = reference_views(track.crop, self.batcher.engine.manifest.reference_views)
        features = mean_features([await self.batcher.encode_reference(view[None]) for view in views])
        self._features, self._reference_pose = features, track.pose
        self.telemetry.count("reference_encoded")

    async def _wait_for_audio(self, work: FrameWork) -> None:
        if not self.timeline.anchored and self.cfg.realtime:
            return  # no audio at all yet: a silent window
        rest_ms = self.batcher.estimate_ms(1) + self._finisher.composite_ms + 2.0
        give_up_ns = work.deadline_ns - int(rest_ms * NS_PER_MS)
        while not self._audio_ended:
            self._audio_arrived.clear()
            if self.timeline.anchored and self.timeline.is_ready(work.frame.capture_ns):
                return
            timeout_s = (give_up_ns - self.clock.monotonic_ns()) / NS_PER_S if self.cfg.realtime else None
            if timeout_s is not None and timeout_s <= 0:
                self.telemetry.count("window_cut_short")
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._audio_arrived.wait(), timeout_s)

    def _window(self, work: FrameWork) -> MelWindow:
        if not self.timeline.anchored:
            mel_cfg = self.timeline.mel_cfg
            silence = np.full(
                (mel_cfg.n_mels, self.timeline.cfg.window_frames), mel_cfg.silence_value, np.float32
            )
            return MelWindow(mel=silence, complete=False, silent=True)
        return self.timeline.window(work.frame.capture_ns)

    async def _infer_stage(self) -> None:
        while True:
            work = await self._tracked.get()
            if work is None:
                break
            if self.bypass:
                work.mode = "bypass"  # the user paused the filter: no inference at all
            if work.mode is None and work.track is not None:
                try:
                    await self._prepare(work)
                except Exception as exc:
                    self._fault("reference", "reference encoding failed", exc)
                    work.mode = "error"
            if await self._submitted.put(work) is not None:
                self.telemetry.count("frames_dropped")
        await self._submitted.put(None)

    async def _prepare(self, work: FrameWork) -> None:
        assert work.track is not None
        await self._ensure_reference(work.track)
        t0 = self.clock.monotonic_ns()
        await self._wait_for_audio(work)
        work.times["wait_audio_ms"] = (self.clock.monotonic_ns() - t0) / NS_PER_MS
        work.window = self._window(work)
        if work.window.evicted:
            self.telemetry.count("window_evicted")
        if work.window.silent:
            self.telemetry.count("window_silent")
        rest_ns = int((self.batcher.estimate_ms(1) + self._finisher.composite_ms) * NS_PER_MS)
        if work.deadline_ns and self.clock.monotonic_ns() + rest_ns > work.deadline_ns:
            work.mode = "late"
            self.telemetry.count("late_by_estimate")  # passed through without trying the engine
            return
        assert self._features is not None
        crop = work.track.crop.astype(np.float32).transpose(2, 0, 1) / 255.0
        work.times["submit_ns"] = float(self.clock.monotonic_ns())
        work.future = self.batcher.submit(self._features, crop, work.window.mel[None], work.deadline_ns)

    async def _finish_stage(self) -> None:
        while True:
            work = await self._submitted.get()
            if work is None:
                break
            await self._outputs.put(await self._finisher.finish(work))
        await self._outputs.put(None)
