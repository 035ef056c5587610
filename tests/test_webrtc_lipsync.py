"""Real aiortc peers through the real pipeline: one engine and one batcher serve every session;
a peer sending a corpus clip gets lip-synced video and its audio back, while a peer sending
a faceless picture at the same time is passed through without disturbing it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from stablesync.realtime.pipeline.session import SessionConfig
from stablesync.realtime.webrtc import ServeConfig, running_server
from stablesync.realtime.webrtc.client import run_client
from stablesync.realtime.webrtc.clip import Clip, load_clip, mark_height_px, synthetic_clip


def _faceless_clip() -> Clip:
    return synthetic_clip(2.0, size=(256, 256))


@pytest.mark.slow
async def test_sessions_share_one_engine_and_stay_isolated(tiny_corpus: Path, cpu_rt_export: Path) -> None:
    from stablesync.export import load_engine
    from stablesync.realtime.webrtc.lipsync import LipSyncFactory

    clip = load_clip(tiny_corpus / "clip00000.mp4")
    # a generous budget: this checks what comes back, not speed, on a machine shared with others
    factory = LipSyncFactory(load_engine(cpu_rt_export, "ort-cpu"), SessionConfig(budget_ms=1000.0))
    async with running_server(ServeConfig(port=0), factory) as server:
        face, faceless = await asyncio.gather(
            run_client(server.url, clip, 6.0), run_client(server.url, _faceless_clip(), 6.0, settle_s=1.2)
        )
        assert await server.registry.wait_empty(5.0)
    for result in (face, faceless):
        assert result.error is None
        assert result.video_frames > 20 and result.audio_frames > 150 and result.audio_rms > 0.01
    face_modes, faceless_modes = face.stats[-1]["modes"], faceless.stats[-1]["modes"]
    assert face_modes.get("lipsync", 0) >= 10, face_modes  # the model drew the mouth
    assert "lipsync" not in faceless_modes and faceless_modes.get("noface", 0) > 20, faceless_modes
    # every lip-synced frame went through the factory's one batcher, and none of the faceless
    # peer's frames did: it ran no more items than the face peer's frames (out, or dropped
    # inside its pipeline after inference; plus up to a second of frames after its last stats
    # message, which come once a second)
    face_frames = sum(face_modes.values()) + face.stats[-1]["dropped_frames"]
    assert face_modes["lipsync"] <= factory.batcher.items_run <= face_frames + 30, (
        factory.batcher.items_run,
        face.stats[-1],
    )
    assert face.stats[-1]["backend"] == "ort-cpu"
    assert face.stats[-1]["pipeline"]["stages_p50_ms"]["infer_ms"] > 0
    # what came back is the clip: its upper face is that of one of the frames sent (below, the
    # renderer may have moved the mouth)
    assert face.last_frame is not None
    # (VP8 twice, at a bitrate that falls on a loaded machine: compared with the other peer's
    # picture rather than with a fixed bound)
    top = slice(mark_height_px(256), 100)
    last = face.last_frame[top].astype(int)

    def nearest(frames: NDArray[np.uint8]) -> float:
        return min(float(np.abs(last - f[top].astype(int)).mean()) for f in frames)

    own, other = nearest(clip.frames), nearest(_faceless_clip().frames)
    assert own < 0.5 * other, (own, other)
