"""Stall recovery of the InferenceBatcher, on a clock the test moves itself: the shipped cpu-rt
engine runs for real, and each of its batches moves the clock by a set time (one of them by a
1.5 s stall). Nothing here depends on how fast or loaded the machine is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from stablesync.export.engine import Engine, FloatArray, ReferenceFeatures
from stablesync.realtime.local.sources import load_image
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.frames import NS_PER_MS, VideoFrame
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from tests.fake_clock import FakeClock
from tests.shipped_engine import shipped_cpu_engine

BUDGET_MS = 250.0
COMPOSITE_MS = 3.0
FRAME_MS = 40.0  # 25 fps
BATCH_MS = 12.0
STALL_MS = 1500.0


class TimedEngine:
    """The real engine; each `generate` moves the clock by BATCH_MS, or by STALL_MS for the batch
    numbered `stall_at` (counted from the first after warm-up)."""

    def __init__(self, inner: Engine, clock: FakeClock, stall_at: int) -> None:
        self.inner, self.manifest, self.backend = inner, inner.manifest, inner.backend
        self.clock, self.stall_at = clock, stall_at
        self.calls = 0
        self.stall_end_ns: int | None = None
        self.armed = False

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        return self.inner.encode_reference(images)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        out = self.inner.generate(features, frames, mels)
        if self.armed:
            self.calls += 1
        if self.calls == self.stall_at and self.stall_end_ns is None:
            self.clock.advance_ms(STALL_MS)
            self.stall_end_ns = self.clock.monotonic_ns()
        else:
            self.clock.advance_ms(BATCH_MS)
        return out


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


async def _stream(engine: Engine, frames: int, stall_at: int) -> tuple[list[str], list[int], int]:
    """Frames at 25 fps on the fake clock, each sent to the batcher only when the estimate says
    it can be done within its budget (what LipSyncSession does). Returns each frame's fate
    ("lipsync", "late": judged late by the estimate, "refused": answered None), the frames'
    capture times and the stall's end."""
    clock = FakeClock()
    timed = TimedEngine(engine, clock, stall_at)
    batcher = InferenceBatcher(timed, clock=clock)  # type: ignore[arg-type]
    await batcher.start()
    await batcher.warmup()
    timed.armed = True
    features, image, mel = await _one_frame(batcher)
    start_ns = clock.monotonic_ns()
    fates: list[str] = []
    captures: list[int] = []
    try:
        for i in range(frames):
            capture_ns = start_ns + int(i * FRAME_MS * NS_PER_MS)
            clock.set_ns(capture_ns)  # the clock never goes back: after a stall frames are overdue
            captures.append(capture_ns)
            deadline_ns = capture_ns + int(BUDGET_MS * NS_PER_MS)
            rest_ns = int((batcher.estimate_ms(1) + COMPOSITE_MS) * NS_PER_MS)
            if clock.monotonic_ns() + rest_ns > deadline_ns:
                fates.append("late")
                continue
            result = await asyncio.wait_for(batcher.submit(features, image, mel, deadline_ns), 30)
            fates.append("refused" if result is None else "lipsync")
    finally:
        await batcher.close()
    assert timed.stall_end_ns is not None
    return fates, captures, timed.stall_end_ns


async def _one_frame(batcher: InferenceBatcher) -> tuple[ReferenceFeatures, FloatArray, FloatArray]:
    """What `batcher.submit` takes for one frame: a grey crop's features, the crop, a silent window."""
    m = batcher.engine.manifest
    image = np.full((3, m.image_size, m.image_size), 0.5, dtype=np.float32)
    features = await batcher.encode_reference(image[None])
    mel = np.full((1, m.mel.n_mels, m.window_frames), m.mel.silence_value, dtype=np.float32)
    return features, image, mel


async def test_lipsync_resumes_within_a_second_of_a_stall(engine: Engine) -> None:
    fates, captures, stall_end_ns = await _stream(engine, frames=150, stall_at=20)
    assert fates[:20] == ["lipsync"] * 20
    after = [(c, f) for c, f in zip(captures, fates, strict=True) if c >= stall_end_ns]
    assert len(after) > 50
    first_ns = next(c for c, f in after if f == "lipsync")
    assert (first_ns - stall_end_ns) / NS_PER_MS <= 1000.0
    synced = sum(f == "lipsync" for _, f in after)
    assert synced >= 0.95 * len(after), fates


async def test_estimate_decays_toward_the_fastest_batch_while_nothing_runs(engine: Engine) -> None:
    clock = FakeClock()
    timed = TimedEngine(engine, clock, stall_at=1)
    batcher = InferenceBatcher(timed, clock=clock)  # type: ignore[arg-type]
    await batcher.start()
    try:
        await batcher.warmup()
        assert batcher.estimate_ms(1) == pytest.approx(BATCH_MS)
        timed.armed = True
        assert await batcher.submit(*await _one_frame(batcher)) is not None  # the stalled batch
        stalled_ms = batcher.estimate_ms(1)
        assert stalled_ms > BUDGET_MS  # one stall: every frame would now be judged late
        clock.advance_ms(1000.0)  # a second without any batch
        assert batcher.estimate_ms(1) < BATCH_MS + 0.05 * (stalled_ms - BATCH_MS)
        assert batcher.estimate_ms(2) == pytest.approx(2 * batcher.estimate_ms(1))
    finally:
        await batcher.close()


async def test_session_counts_the_frames_the_estimate_passes_through(
    engine: Engine, rt_face_photo: Path
) -> None:
    """After a stall, on a clock that then stands still (so the estimate cannot decay), every
    frame of a live session is passed through as late, and telemetry says why."""
    clock = FakeClock()
    timed = TimedEngine(engine, clock, stall_at=1)
    batcher = InferenceBatcher(timed, clock=clock)  # type: ignore[arg-type]
    session = LipSyncSession(batcher, SessionConfig(realtime=True, budget_ms=BUDGET_MS), name="stalled")
    await session.start()
    try:
        timed.armed = True
        assert await batcher.submit(*await _one_frame(batcher)) is not None  # the stalled batch
        assert batcher.estimate_ms(1) > BUDGET_MS
        face = load_image(rt_face_photo)
        for i in range(6):
            # stamped on the session's clock (the batcher's, which stands still after the stall)
            await session.submit_video(VideoFrame(face, clock.monotonic_ns(), i * 40_000_000, i))
            await asyncio.sleep(0.04)
        await session.end_video()
        modes = []
        while (out := await asyncio.wait_for(session.next_output(), 30)) is not None:
            modes.append(out.mode)
    finally:
        await session.close(2.0)
        await batcher.close(2.0)
    counts = session.telemetry.counts
    assert modes and set(modes) == {"late"}
    assert counts["late_by_estimate"] == len(modes)
