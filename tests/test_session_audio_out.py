"""The session keeps its audio output only where a sink reads it (`SessionConfig.audio_out`):
WebRTC sends the caller's own audio frames, so a WebRTC session keeps no copy and counts no
drops however long the call; `run` (file, virtual microphone) reads `next_audio` as before."""

from __future__ import annotations

import asyncio
import dataclasses

import numpy as np
import pytest

from stablesync.export.engine import Engine
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.frames import AudioChunk
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig
from stablesync.realtime.webrtc.lipsync import LipSyncFactory
from tests.shipped_engine import shipped_cpu_engine

CHUNK_SAMPLES = 320  # 20 ms at 16 kHz
CHUNKS = 100


@pytest.fixture(scope="module")
def engine() -> Engine:
    return shipped_cpu_engine()


async def _feed_unread(engine: Engine, cfg: SessionConfig) -> LipSyncSession:
    """CHUNKS chunks of audio through a live session whose audio output nobody reads."""
    batcher = InferenceBatcher(engine)
    session = LipSyncSession(batcher, cfg, name="audio-out")
    await session.start()
    try:
        rng = np.random.default_rng(0)
        for i in range(CHUNKS):
            samples = (0.1 * rng.standard_normal(CHUNK_SAMPLES)).astype(np.float32)
            await session.submit_audio(AudioChunk(samples, 16_000, i * 20_000_000, i * 20_000_000))
        await session.end_audio()
        while not session._audio_ended:
            await asyncio.sleep(0.01)
    finally:
        await session.close(2.0)
        await batcher.close(2.0)
    return session


async def test_a_session_without_audio_out_keeps_and_drops_nothing(engine: Engine) -> None:
    cfg = SessionConfig(audio_out_chunks=8, audio_out=False)
    session = await _feed_unread(engine, cfg)
    assert session.telemetry.counts["audio_out_dropped"] == 0
    assert await session.next_audio() is None


async def test_a_session_with_audio_out_keeps_the_newest_for_its_sink(engine: Engine) -> None:
    """The counterpart: with the output kept and nobody reading, the oldest chunks go (counted)."""
    session = await _feed_unread(engine, SessionConfig(audio_out_chunks=8))
    assert session.telemetry.counts["audio_out_dropped"] == CHUNKS - 8
    first = await session.next_audio()
    assert first is not None and first.capture_ns == (CHUNKS - 8) * 20_000_000


def test_webrtc_sessions_keep_no_audio_output(engine: Engine) -> None:
    factory = LipSyncFactory(engine, SessionConfig(audio_out_chunks=8))
    assert factory._session_cfg == dataclasses.replace(SessionConfig(audio_out_chunks=8), audio_out=False)
