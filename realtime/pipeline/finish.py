"""The last stage of a `LipSyncSession`, one frame at a time: the generated crop is awaited
(in live mode no longer than the frame's deadline leaves for compositing), composited into the
camera frame and watermarked on the session's render worker, and the `OutputFrame` is built
with the frame's mode and stage times.

The render worker is one thread that owns the compositor (its face mesh is not thread-safe).
A fault here passes the frame through; the session's fault hook counts and logs it. In avatar
mode (a still source) a frame that could not be lip-synced repeats the last lip-synced picture,
so the mouth does not pop back to the photo's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stablesync.export.engine import FloatArray
from stablesync.realtime.pipeline.audio_windows import MelWindow
from stablesync.realtime.pipeline.clock import Clock
from stablesync.realtime.pipeline.compositing import Compositor
from stablesync.realtime.pipeline.frames import (
    NS_PER_MS,
    NS_PER_S,
    FrameMode,
    OutputFrame,
    RgbImage,
    StageTimes,
    VideoFrame,
)
from stablesync.realtime.pipeline.session_config import SessionConfig
from stablesync.realtime.pipeline.telemetry import Telemetry
from stablesync.realtime.pipeline.tracking import FaceTrack
from stablesync.realtime.pipeline.worker import Worker
from stablesync.realtime.watermark import Watermarker

# (stage, summary, exception): counts and logs a live fault; the frame it hit passes through
FaultHook = Callable[[str, str, Exception], None]


@dataclass
class FrameWork:
    """One frame on its way through the session's stages."""

    frame: VideoFrame
    deadline_ns: int  # 0: none (offline)
    track: FaceTrack | None = None
    mode: FrameMode | None = None  # set when the frame is passed through
    window: MelWindow | None = None
    future: asyncio.Future[FloatArray | None] | None = None
    times: dict[str, float] = field(default_factory=dict)


class Finisher:
    def __init__(
        self,
        size: int,
        cfg: SessionConfig,
        clock: Clock,
        telemetry: Telemetry,
        fault: FaultHook,
        name: str,
        logger: logging.Logger,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.telemetry = telemetry
        self._fault = fault
        # marks every frame the filter changes
        self.watermarker = Watermarker(run_id=cfg.watermark_run_id, label=cfg.label)
        self._worker = Worker(f"{name}-render", logger)
        self._compositor = Compositor(size, cfg.composite)
        self._last_composited: RgbImage | None = None
        self.composite_ms = 3.0  # running estimate of one frame's compositing (deadline planning)

    async def finish(self, work: FrameWork) -> OutputFrame:
        frame = work.frame
        generated: FloatArray | None = None
        if work.mode is None and work.future is not None:
            try:
                generated = await self._await_generated(work)
            except TimeoutError:
                self.telemetry.count("inference_past_deadline")
                work.mode = "late"
            except Exception as exc:
                self._fault("inference", "inference failed", exc)
                work.mode = "error"
            work.times["infer_ms"] = (self.clock.monotonic_ns() - work.times["submit_ns"]) / NS_PER_MS
            if generated is None and work.mode is None:
                work.mode = "late"
        image = frame.image
        if generated is not None and work.track is not None and work.window is not None:
            image = await self._render(work, generated)
        elif frame.still and self._last_composited is not None and work.mode != "bypass":
            image = self._last_composited  # avatar mode: repeat the last lip-synced picture, no pop
        stages = StageTimes(
            track_ms=work.times.get("track_ms", 0.0),
            wait_audio_ms=work.times.get("wait_audio_ms", 0.0),
            infer_ms=work.times.get("infer_ms", 0.0),
            composite_ms=work.times.get("composite_ms", 0.0),
        )
        return OutputFrame(
            frame=frame, image=image, mode=work.mode or "error", stages=stages, deadline_ns=work.deadline_ns
        )

    async def _render(self, work: FrameWork, generated: FloatArray) -> RgbImage:
        """The frame with the generated mouth, on the render worker; the frame as it came when
        compositing fails. Sets the frame's mode and compositing time."""
        t0 = self.clock.monotonic_ns()
        try:
            image = await self._worker.run(self._composite, work, generated)
            work.mode = "lipsync"
            self._last_composited = image
        except Exception as exc:
            self._fault("compositing", "compositing failed", exc)
            work.mode = "error"
            image = work.frame.image
        ms = (self.clock.monotonic_ns() - t0) / NS_PER_MS
        work.times["composite_ms"] = ms
        self.composite_ms = 0.8 * self.composite_ms + 0.2 * ms
        return image

    async def _await_generated(self, work: FrameWork) -> FloatArray | None:
        """The generated crop; in live mode, stops waiting when compositing could no longer meet
        the frame's deadline (TimeoutError): the frame then passes through instead of holding up
        every frame behind it. The request is cancelled: the batcher skips it if not yet run."""
        assert work.future is not None
        if not (self.cfg.realtime and work.deadline_ns):
            return await work.future
        composite_ns = int(self.composite_ms * NS_PER_MS)
        remaining_s = max(0.0, (work.deadline_ns - composite_ns - self.clock.monotonic_ns()) / NS_PER_S)
        return await asyncio.wait_for(work.future, remaining_s)

    def _composite(self, work: FrameWork, generated: FloatArray) -> RgbImage:
        assert work.track is not None and work.window is not None
        gen_u8 = np.clip(generated.transpose(1, 2, 0) * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
        result = self._compositor.composite(
            work.frame.image,
            gen_u8,
            work.track.raw_points if work.track.raw_points is not None else work.track.points,
            work.track.alignment,
            work.frame.capture_ns,
            closed=work.window.silent and self.cfg.close_lips_in_silence,
        )
        if result.unread:
            self.telemetry.count("mouth_shape_unread")
        owned = result.image is not work.frame.image  # the compositor's own new array
        return self.watermarker.mark(result.image, in_place=owned)  # also what avatar mode repeats

    async def close(self, timeout_s: float) -> None:
        """Closes the compositor on its own thread (within `timeout_s`), then the thread."""
        await self._worker.close(self._compositor.close, timeout_s)
