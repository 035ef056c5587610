"""Real aiortc peers through `stablesync serve` (passthrough): what is sent comes back, in order,
with its audio; the stats channel reports; a peer that vanishes frees its slot without
disturbing another."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stablesync.realtime.pipeline.frames import NS_PER_MS
from stablesync.realtime.webrtc import PassthroughFactory, ServeConfig, running_server
from stablesync.realtime.webrtc.client import run_client
from stablesync.realtime.webrtc.clip import (
    CHECK_BITS,
    MARK_BITS,
    add_tone_marks,
    draw_mark,
    load_clip,
    mark_height_px,
    read_mark,
    synthetic_clip,
    tone_onset,
)
from stablesync.realtime.webrtc.media import AUDIO_FRAME_NS, SERVER_AUDIO_HELD_PACKETS

REPO = Path(__file__).resolve().parents[1]


def test_marks_round_trip_and_reject_noise() -> None:
    frame = synthetic_clip(0.2).frames[0]
    for index in (0, 1, 25, 4095, 5000):
        assert read_mark(draw_mark(frame, index)) == index % 4096
    assert read_mark(frame) is None
    rng = np.random.default_rng(0)
    assert read_mark(rng.integers(0, 255, frame.shape, dtype=np.uint8)) is None
    audio = add_tone_marks(np.zeros(48_000 * 2, np.float32))
    assert tone_onset(audio[:960], 48_000) == 0
    assert tone_onset(audio[48_000 - 480 : 48_000 + 480], 48_000) == 480
    assert tone_onset(audio[2000:2960], 48_000) is None


def test_a_mark_read_with_one_or_two_wrong_cells_is_refused_not_misread() -> None:
    """A VP8-blurred cell read the wrong way must not turn frame 40 into frame 2088 (a 'latency'
    of 80 s): the old 4-bit check missed every flip of the index's top 8 bits."""
    frame = synthetic_clip(0.2).frames[0]
    cells = MARK_BITS + CHECK_BITS
    cell_w, h = frame.shape[1] // cells, mark_height_px(frame.shape[0])

    def flipped(marked: np.ndarray, *which: int) -> np.ndarray:
        out = marked.copy()
        for i in which:
            out[:h, i * cell_w : (i + 1) * cell_w] = 255 - out[:h, i * cell_w : (i + 1) * cell_w]
        return out

    for index in (0, 40, 1234, 4095):
        marked = draw_mark(frame, index)
        for i in range(cells):
            assert read_mark(flipped(marked, i)) is None, (index, i)
            for j in range(i + 1, cells):
                assert read_mark(flipped(marked, i, j)) is None, (index, i, j)


def test_clips_load_from_a_corpus_video(tiny_corpus: Path) -> None:
    clip = load_clip(tiny_corpus / "clip00000.mp4")
    assert clip.frames.shape == (50, 256, 256, 3) and clip.fps == 25.0
    assert abs(len(clip.audio) / 48_000 - 2.0) < 0.1 and float(np.abs(clip.audio).max()) > 0.05


async def test_a_clip_comes_back_with_its_audio_and_stats(tiny_corpus: Path) -> None:
    clip = load_clip(tiny_corpus / "clip00000.mp4")
    async with running_server(ServeConfig(port=0), PassthroughFactory()) as server:
        result = await run_client(server.url, clip, 4.0)
        assert result.error is None
        assert result.video_frames >= 60  # ~25 fps for 4 s
        assert result.marked_frames >= 0.9 * result.video_frames  # they are our frames, in order
        assert result.audio_frames >= 150 and result.audio_rms > 0.01  # 50 frames/s of real audio
        assert result.last_frame is not None and result.last_frame.shape == (256, 256, 3)
        assert len(result.av_offset_ms) >= 2  # tone marks came back and were paired
        assert abs(float(np.median(result.av_offset_ms))) < 120  # a receiver hears them together
        stats = result.stats[-1]
        assert stats["type"] == "stats" and stats["fps_out"] > 15 and stats["frames_out"] > 60
        assert stats["modes"] == {"passthrough": stats["frames_out"]}
        # the floor: how long the server's audio receiver holds a packet (media.py)
        assert stats["sync_delay_ms"] >= SERVER_AUDIO_HELD_PACKETS * AUDIO_FRAME_NS / NS_PER_MS
        assert await server.registry.wait_empty(5.0)


@pytest.mark.slow
async def test_a_vanishing_client_is_dropped_and_others_keep_going() -> None:
    config = ServeConfig(port=0, idle_timeout_s=2.0)
    async with running_server(config, PassthroughFactory()) as server:
        steady = asyncio.ensure_future(run_client(server.url, synthetic_clip(2.0), 9.0, settle_s=0.5))
        doomed = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "stablesync.realtime.webrtc.client", server.url, "--seconds", "60",
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
        )  # fmt: skip
        try:
            for _ in range(200):
                if len(server.registry) == 2 and all(
                    s.stats.frames_out > 10 for s in server.registry.sessions()
                ):
                    break
                await asyncio.sleep(0.05)
            assert len(server.registry) == 2
            doomed.kill()  # no goodbye: its packets just stop
            await doomed.wait()
            for _ in range(100):
                if len(server.registry) == 1:
                    break
                await asyncio.sleep(0.1)
            assert len(server.registry) == 1, "the vanished peer's session was not freed"
            (survivor,) = server.registry.sessions()
            frames_before = survivor.stats.frames_out
            await asyncio.sleep(1.0)
            assert survivor.stats.frames_out - frames_before >= 15  # still ~25 fps
        finally:
            if doomed.returncode is None:
                doomed.kill()
                await doomed.wait()
        result = await steady
        assert result.error is None and result.fps > 18
        assert await server.registry.wait_empty(5.0)


def test_frames_that_waited_in_the_receive_queue_are_spotted() -> None:
    import fractions

    import av

    from stablesync.realtime.webrtc.media import StalenessFilter

    f = StalenessFilter()

    def frame(pts_s: float) -> av.VideoFrame:
        out = av.VideoFrame(16, 16, "yuv420p")
        out.pts, out.time_base = round(pts_s * 90_000), fractions.Fraction(1, 90_000)
        return out

    base_ns = 5_000_000_000
    on_time = [
        f.is_stale(frame(i / 25), base_ns + int(i / 25 * 1e9) + 3_000_000 * (i % 3)) for i in range(50)
    ]
    assert not any(on_time)  # jitter of a few ms is not staleness
    # the loop stalled for 0.5 s: the next frames arrive together; the older ones are stale, but
    # never more than 4 in a row (then the delay counts as the new normal)
    burst = [f.is_stale(frame((50 + i) / 25), base_ns + int(2.5e9)) for i in range(12)]
    assert burst[:4] == [True] * 4 and burst[4] is False and not any(burst[5:])

    # a lasting delay (an overloaded server) still lets frames through...
    def at(i: int, extra_s: float) -> bool:
        return f.is_stale(frame(i / 25), base_ns + int((i / 25 + extra_s) * 1e9))

    late = [at(62 + i, 0.4) for i in range(20)]
    assert sum(late) <= 4 and not any(late[5:])
    # ... but a backlog beyond 1 s is never accepted: latency cannot grow without bound
    assert all(at(82 + i, 1.5) for i in range(20))
