"""`benchmarks/offline_render.py`: the benchmarks' renders carry one watermark run id, so two
renders of the same inputs are the same frames (what compares two weights or two runs fairly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

RATE_HZ = 16_000


@pytest.mark.slow
def test_renders_with_one_run_id_are_the_same_frames_and_marked_with_it(tiny_corpus: Path) -> None:
    from stablesync.benchmarks.offline_render import BENCH_RUN_ID, render_offline
    from stablesync.enroll.pipeline import SHIPPED_DIR
    from stablesync.enroll.validate import read_segment
    from stablesync.media import read_audio

    clip = tiny_corpus / "clip00000.mp4"
    seg = read_segment(clip, read_audio(clip, RATE_HZ), 0.0, 0.6)

    def render(run_id: int) -> tuple[np.ndarray, dict[str, int]]:
        out = render_offline(str(SHIPPED_DIR), seg.frames, seg.pts_s, seg.audio, run_id=run_id)
        assert out.modes.count("lipsync") == len(seg.frames), out.modes
        return np.stack(out.images), out.counts

    first, counts = render(BENCH_RUN_ID)
    again, _ = render(BENCH_RUN_ID)
    other, other_counts = render(BENCH_RUN_ID ^ 0xFFFF)
    assert f"event:watermark run id {BENCH_RUN_ID:08x}" in counts, counts
    assert f"event:watermark run id {BENCH_RUN_ID ^ 0xFFFF:08x}" in other_counts, other_counts
    assert np.array_equal(first, again)
    # another id alone changes the frames: what made two renders of one weights differ before
    assert not np.array_equal(first, other)
