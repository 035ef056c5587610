"""The user's pause: with `bypass` set, every frame comes out untouched and unmarked (mode
"bypass", no inference); cleared, lip-sync resumes. `stablesync run` toggles it on SIGUSR1."""

from __future__ import annotations

import asyncio

import numpy as np

from stablesync.realtime.local.sources import load_image
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.frames import AudioChunk, VideoFrame
from stablesync.realtime.pipeline.loading import open_engine
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig


async def test_bypass_passes_frames_through_untouched_and_resumes(rt_face_photo) -> None:  # type: ignore[no-untyped-def]
    image = load_image(rt_face_photo)
    batcher = InferenceBatcher(open_engine(None, "ort-cpu"))
    session = LipSyncSession(batcher, SessionConfig(realtime=False), name="bypass")
    await session.start()
    speech = (0.2 * np.random.default_rng(0).standard_normal(16_000 * 2)).astype(np.float32)

    async def feed_audio() -> None:
        for k in range(0, speech.size, 320):
            t_ns = 1_000_000_000 + k * 62_500
            await session.submit_audio(AudioChunk(speech[k : k + 320], 16_000, t_ns, t_ns))
        await session.end_audio()

    feeder = asyncio.create_task(feed_audio())
    try:
        outputs = []
        for i in range(20):
            session.bypass = i < 10
            t_ns = 1_000_000_000 + i * 40_000_000
            await session.submit_video(VideoFrame(image, t_ns, t_ns, i))
            out = await session.next_output()
            assert out is not None
            outputs.append(out)
        await feeder
    finally:
        feeder.cancel()
        await session.close()
        await batcher.close()
    assert [o.mode for o in outputs[:10]] == ["bypass"] * 10
    assert all(np.array_equal(o.image, image) for o in outputs[:10])
    assert sum(o.mode == "lipsync" for o in outputs[10:]) >= 8
    assert not np.array_equal(outputs[-1].image, image)
