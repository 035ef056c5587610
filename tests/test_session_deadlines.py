"""The live session's deadline policy on a clock the test moves (`LipSyncSession(clock=...)`,
shared with the batcher): the real engine, tracker and renderer run, but every decision is
taken on the fake clock, so the outcome does not depend on how fast or loaded the machine is.

Policy: a frame's deadline is capture + budget; a frame whose remaining time cannot hold a
batch (the batcher's estimate) and its compositing is passed through as "late" without
reaching the engine (`late_by_estimate`); a frame whose look-ahead window has not arrived waits
for it only while the deadline leaves time for a batch and its compositing, then stops
(`window_cut_short`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from stablesync.export.engine import Engine, FloatArray, ReferenceFeatures
from stablesync.realtime.local.sources import load_image
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.frames import NS_PER_MS, AudioChunk, RgbImage, VideoFrame
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from tests.fake_clock import FakeClock
from tests.shipped_engine import shipped_cpu_engine

# long enough that the real engine, tracker and renderer finish well within it however loaded
# the machine (the session waits for a generated crop in real time, as long as its fake
# deadline allows)
BUDGET_MS = 2000.0
BATCH_MS = 12.0  # each engine call moves the fake clock this much
CHUNK_MS = 20


class SteppingEngine:
    """The real engine; every `generate` moves the clock by BATCH_MS and is counted."""

    def __init__(self, inner: Engine, clock: FakeClock) -> None:
        self.inner, self.manifest, self.backend, self.clock = inner, inner.manifest, inner.backend, clock
        self.generated = 0

    def encode_reference(self, images: FloatArray) -> ReferenceFeatures:
        return self.inner.encode_reference(images)

    def generate(self, features: ReferenceFeatures, frames: FloatArray, mels: FloatArray) -> FloatArray:
        self.generated += 1
        self.clock.advance_ms(BATCH_MS)
        return self.inner.generate(features, frames, mels)


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


async def _frame_fate(
    session: LipSyncSession, face: RgbImage, capture_ns: int, index: int
) -> tuple[str, int]:
    """Submits one frame, waits for it to come out: its mode and the engine calls it caused."""
    engine = session.batcher.engine
    assert isinstance(engine, SteppingEngine)
    before = engine.generated
    await session.submit_video(VideoFrame(face, capture_ns, index * 40_000_000, index))
    out = await asyncio.wait_for(session.next_output(), 30)
    assert out is not None and out.frame.index == index
    return out.mode, engine.generated - before


async def test_deadline_policy_on_a_fake_clock(engine: Engine, rt_face_photo: Path) -> None:
    clock = FakeClock()
    stepping = SteppingEngine(engine, clock)
    batcher = InferenceBatcher(stepping, clock=clock)  # type: ignore[arg-type]
    session = LipSyncSession(batcher, SessionConfig(budget_ms=BUDGET_MS), name="deadlines", clock=clock)
    await session.start()
    try:
        assert batcher.estimate_ms(1) == pytest.approx(BATCH_MS)  # warm-up measured on the fake clock
        start_ns = clock.monotonic_ns()
        rng = np.random.default_rng(0)
        for i in range(-150, 10):  # 3 s of speech-like noise before now and 0.2 s after
            samples = (0.2 * rng.standard_normal(320)).astype(np.float32)
            at_ns = start_ns + i * CHUNK_MS * int(NS_PER_MS)
            await session.submit_audio(AudioChunk(samples, 16_000, at_ns, at_ns - start_ns))
        face = load_image(rt_face_photo)
        assert await _frame_fate(session, face, start_ns, 0) == ("lipsync", 1)  # + the reference

        # captured 100 ms ago, window complete: 1.9 s left, generated
        now = clock.monotonic_ns()
        assert await _frame_fate(session, face, now - int(100 * NS_PER_MS), 1) == ("lipsync", 1)
        # captured (budget - 5 ms) ago: 5 ms left cannot hold a 12 ms batch: passed through, the
        # engine untouched
        now = clock.monotonic_ns()
        assert await _frame_fate(session, face, now - int((BUDGET_MS - 5) * NS_PER_MS), 2) == ("late", 0)
        assert session.telemetry.counts["late_by_estimate"] == 1
        # captured 100 ms ago, its look-ahead window past the audio fed: it waits for the window
        # while the deadline allows (nothing comes out however long the real wait) ...
        clock.advance_ms(300.0)
        now = clock.monotonic_ns()
        fate = asyncio.ensure_future(_frame_fate(session, face, now - int(100 * NS_PER_MS), 3))
        await asyncio.sleep(0.3)
        assert not fate.done() and session.telemetry.counts["window_cut_short"] == 0
        # ... and stops waiting once it does not: 5 ms left, too little for a batch: passed through
        clock.advance_ms(BUDGET_MS - 100 - 5)
        assert await fate == ("late", 0)
        assert session.telemetry.counts["window_cut_short"] == 1
        assert session.telemetry.counts["late_by_estimate"] == 2
    finally:
        await session.close(2.0)
        await batcher.close(2.0)
