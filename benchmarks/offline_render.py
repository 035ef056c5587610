"""Drives one offline `LipSyncSession` (as `stablesync run --fast` does) over frames held in
memory, so a benchmark can compare each output frame with its source frame exactly.

Frames are stamped at their own times (`pts_s`), the audio (16 kHz mono) in 20 ms chunks on the
same time line; the outputs come back in order, one per frame, at the frame's resolution.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk, VideoFrame

RATE_HZ = 16_000
CHUNK_S = 0.02
# the watermark's run id in benchmark renders: with one id two renders of the same inputs give the
# same frames (the mark's pattern differs by up to 7 grey levels between ids, and the face mesh
# that measures the output reads it)
BENCH_RUN_ID = 0x5AB1E5


@dataclass(frozen=True)
class Rendered:
    images: list[NDArray[np.uint8]]
    modes: list[str]
    counts: dict[str, int]


async def _render(
    weights: str | None,
    frames: list[NDArray[np.uint8]],
    pts_s: list[float],
    audio: NDArray[np.float32],
    still: bool,
    run_id: int | None,
) -> Rendered:
    from stablesync.realtime.pipeline.batcher import InferenceBatcher
    from stablesync.realtime.pipeline.loading import open_engine
    from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig

    engine = open_engine(weights, "ort-cpu")
    batcher = InferenceBatcher(engine)
    session = LipSyncSession(batcher, SessionConfig(realtime=False, watermark_run_id=run_id), name="bench")
    await session.start()
    base_ns = 1_000_000_000

    async def feed_audio() -> None:
        step = int(CHUNK_S * RATE_HZ)
        for k in range(0, len(audio), step):
            t_ns = base_ns + k * NS_PER_S // RATE_HZ
            chunk = AudioChunk(audio[k : k + step].astype(np.float32), RATE_HZ, t_ns, t_ns - base_ns)
            await session.submit_audio(chunk)
        await session.end_audio()

    async def feed_video() -> None:
        for i, (image, t_s) in enumerate(zip(frames, pts_s, strict=True)):
            t_ns = base_ns + round(t_s * NS_PER_S)
            await session.submit_video(VideoFrame(image, t_ns, t_ns - base_ns, i, still=still and i > 0))
        await session.end_video()

    images: list[NDArray[np.uint8]] = []
    modes: list[str] = []
    feeders = [asyncio.create_task(feed_audio()), asyncio.create_task(feed_video())]
    try:
        while (out := await session.next_output()) is not None:
            images.append(out.image)
            modes.append(out.mode)
        await asyncio.gather(*feeders)
    finally:
        for task in feeders:
            task.cancel()
        await session.close()
        await batcher.close()
    return Rendered(images=images, modes=modes, counts=dict(session.telemetry.counts))


def render_offline(
    weights: str | None,
    frames: list[NDArray[np.uint8]],
    pts_s: list[float],
    audio: NDArray[np.float32],
    still: bool = False,
    run_id: int | None = None,
) -> Rendered:
    """Every frame lip-synced to `audio` (16 kHz mono, starting at pts 0), in order, watermarked
    with `run_id` (None: a random one, as any run)."""
    return asyncio.run(_render(weights, frames, pts_s, audio, still, run_id))
