"""What the WebRTC pipeline (`realtime/webrtc/lipsync.py`) sends back for each decoded frame: one
it passed through untouched (no face; the user's bypass) is the very `av.VideoFrame` that came
in, carried through the pipeline with the frame (`VideoFrame.source`); a lip-synced one is a new
frame of the composited picture. Real engine, tracker and renderer, on a clock the test moves."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import av
import numpy as np
import pytest

from stablesync.export.engine import Engine
from stablesync.realtime.local.sources import load_image
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from stablesync.realtime.webrtc.lipsync import LipSyncPipeline
from tests.fake_clock import FakeClock
from tests.shipped_engine import shipped_cpu_engine


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


async def test_a_passed_through_frame_is_the_decoded_frame_that_came_in(
    engine: Engine, rt_face_photo: Path
) -> None:
    clock = FakeClock()
    batcher = InferenceBatcher(engine, clock=clock)
    # no audio: silent windows, so no frame waits for sound; no frame misses this budget
    session = LipSyncSession(batcher, SessionConfig(budget_ms=2000.0, audio_out=False), clock=clock)
    await session.start()
    executor = ThreadPoolExecutor(max_workers=1)
    pipeline = LipSyncPipeline(session, executor)
    face = load_image(rt_face_photo)
    faceless = np.full_like(face, 128)
    returned: list[tuple[str, bool]] = []  # (mode, the very frame sent)
    try:
        for image, bypass in [(face, False), (faceless, False), (face, True), (face, False)]:
            session.bypass = bypass
            clock.advance_ms(40.0)
            sent = av.VideoFrame.from_ndarray(image, format="rgb24")
            await pipeline.push_video(sent, clock.monotonic_ns())
            back = await asyncio.wait_for(pipeline.next_frame(), 30)
            assert back is not None
            returned.append((back.mode, back.frame is sent))
    finally:
        await pipeline.aclose()
        await batcher.close(2.0)
        executor.shutdown(wait=False)
    assert returned == [("lipsync", False), ("noface", True), ("bypass", True), ("lipsync", False)]
