"""The real-time pipeline behind WebRTC sessions in one process (`serve --in-process`, GPU
backends, and each session worker process for its one session): one engine, one
`InferenceBatcher` shared by every peer, one `LipSyncSession` (realtime/pipeline/session.py) per
peer.

The batcher gathers the due frames of all sessions into one `engine.generate` call and answers
a frame that would miss its deadline with a passthrough, so a slow or stalled peer never holds
the others back. Frame format conversions run on a small executor owned by the factory. On
onnxruntime's CPU backend the batcher runs `inference_workers` batches at once (the engine opened
with one intra-op thread each: `stablesync serve --threads N`), so the sessions' frames are
generated in parallel instead of one after the other.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
from av.video.reformatter import Interpolation

from stablesync.export.engine import Engine
from stablesync.realtime.pipeline.batcher import BatcherConfig, InferenceBatcher
from stablesync.realtime.pipeline.frames import AudioChunk, RgbImage, VideoFrame
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from stablesync.realtime.pipeline.telemetry import SeriesName, Telemetry
from stablesync.realtime.webrtc.processing import (
    PIPELINE_AUDIO_RATE_HZ,
    FloatArray,
    ProcessedFrame,
    SessionPipeline,
)
from stablesync.realtime.webrtc.stats import PipelineFigures

STAGE_SERIES: tuple[SeriesName, ...] = ("track_ms", "wait_audio_ms", "infer_ms", "composite_ms")
RECENT_FRAMES = 125
# swscale's default YUV<->RGB path truncates (about 1 level per channel, most on blue), which
# makes a converted (lip-synced) frame warmer and more saturated than a passed-through one; the
# accurate path keeps them alike (tests/test_webrtc_colour.py)
DECODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
ENCODE_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND
# PyAV gives each frame it converts a swscale context of its own, which by default ("auto")
# starts a pool of one thread per core and keeps it until the frame is freed: every decoded
# frame in flight (and every one left in a reference cycle until the garbage collector runs)
# held its own threads. Conversions run single-threaded on the factory's executor instead.
SWS_THREADS = 1
PARALLEL_BACKENDS = ("ort-cpu",)  # engines whose generate() may run on several threads at once
# the stats message's "pipeline.late": frames passed through late, by why, and "over_budget"
# (frames handed on after their deadline), as the session counts them
LATE_COUNTS = ("window_cut_short", "late_by_estimate", "inference_past_deadline", "over_budget")


def _to_rgb(frame: av.VideoFrame) -> RgbImage:
    """The decoded frame as RGB, by its own matrix and range tags (BT.601 limited when untagged)."""
    rgb = frame.reformat(format="rgb24", interpolation=DECODE_FLAGS, threads=SWS_THREADS)
    return np.asarray(rgb.to_ndarray(), dtype=np.uint8)


def _from_rgb(image: RgbImage) -> av.VideoFrame:
    """A processed picture as the encoder takes it: I420, BT.601 limited range (what a VP8
    receiver assumes), converted here rather than by the encoder's default path."""
    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
    return rgb.reformat(
        format="yuv420p",
        dst_colorspace="ITU601",
        dst_color_range="MPEG",
        interpolation=ENCODE_FLAGS,
        threads=SWS_THREADS,
    )


def pipeline_figures(telemetry: Telemetry) -> PipelineFigures:
    """The stats message's "pipeline": each stage's median over the recent frames, late counts."""
    stages: dict[SeriesName, float] = {}
    for name in STAGE_SERIES:
        recent = telemetry.recent(name, RECENT_FRAMES)
        if recent:
            stages[name] = round(float(np.median(recent)), 2)
    late = {name: telemetry.counts[name] for name in LATE_COUNTS if telemetry.counts[name]}
    return {"stages_p50_ms": stages, "late": late}


class LipSyncFactory:
    def __init__(
        self,
        engine: Engine,
        session_cfg: SessionConfig | None = None,
        batcher_cfg: BatcherConfig | None = None,
        convert_threads: int = 2,
        inference_workers: int = 1,
    ) -> None:
        self.backend = engine.backend
        workers = inference_workers if engine.backend in PARALLEL_BACKENDS else 1
        batcher_cfg = dataclasses.replace(batcher_cfg or BatcherConfig(), workers=workers)
        self.batcher = InferenceBatcher(engine, batcher_cfg)
        # the returned audio is the caller's own frames (media.DelayedAudioTrack): no copy kept
        self._session_cfg = dataclasses.replace(session_cfg or SessionConfig(), audio_out=False)
        self._executor = ThreadPoolExecutor(max_workers=convert_threads, thread_name_prefix="stablesync-rtc")

    async def open_session(self, session_id: str) -> SessionPipeline:
        session = LipSyncSession(self.batcher, self._session_cfg, name=f"webrtc-{session_id}")
        await session.start()
        return LipSyncPipeline(session, self._executor)

    async def aclose(self) -> None:
        await self.batcher.close()
        self._executor.shutdown(wait=False, cancel_futures=True)


class LipSyncPipeline:
    def __init__(self, session: LipSyncSession, executor: ThreadPoolExecutor) -> None:
        self._session = session
        self._executor = executor
        self._first_ns: int | None = None
        self._frames_in = 0
        self._audio_pts_ns = 0

    @property
    def telemetry(self) -> Telemetry:
        return self._session.telemetry

    @property
    def budget_ms(self) -> float | None:
        return self._session.budget_ms

    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        chunk = AudioChunk(samples, PIPELINE_AUDIO_RATE_HZ, capture_ns, self._audio_pts_ns)
        self._audio_pts_ns += chunk.duration_ns
        self._session.offer_audio(chunk)  # live: a full queue drops (counted), never waits

    async def push_video(self, frame: av.VideoFrame, capture_ns: int, index: int | None = None) -> None:
        """`index`: the frame's number (its `OutputFrame.frame.index`), by default a count."""
        loop = asyncio.get_running_loop()
        image = await loop.run_in_executor(self._executor, _to_rgb, frame)
        if self._first_ns is None:
            self._first_ns = capture_ns
        number = self._frames_in if index is None else index
        video = VideoFrame(image, capture_ns, capture_ns - self._first_ns, number, source=frame)
        self._frames_in += 1
        await self._session.submit_video(video)

    async def next_frame(self) -> ProcessedFrame | None:
        out = await self._session.next_output()
        if out is None:
            return None
        original = out.frame.source
        if out.image is out.frame.image and isinstance(original, av.VideoFrame):
            frame = original  # passed through untouched: send the decoded frame as it came
        else:
            loop = asyncio.get_running_loop()
            frame = await loop.run_in_executor(self._executor, functools.partial(_from_rgb, out.image))
        return ProcessedFrame(frame, out.frame.capture_ns, out.mode, out)

    def delivered(self, frame: ProcessedFrame, handed_ns: int, audio_delay_ns: int | None) -> None:
        assert frame.output is not None  # every frame this pipeline gives out carries its OutputFrame
        self._session.mark_delivered(frame.output, audio_delay_ns, handed_ns)

    def figures(self) -> PipelineFigures:
        return pipeline_figures(self._session.telemetry)

    async def end(self) -> None:
        await self._session.end_video()

    async def aclose(self) -> None:
        await self._session.close(timeout_s=1.0)
