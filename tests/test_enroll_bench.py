"""The enroll benchmark's cross-driven measure (`benchmarks/enroll.py`), on corpus clips: the
held-out frames driven by another recording follow that recording, not their own audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

RATE_HZ = 16_000


@pytest.mark.slow
def test_cross_driven_frames_follow_the_new_speech(tiny_corpus: Path) -> None:
    from stablesync.benchmarks.enroll import CROSS_KEYS, cross_driven
    from stablesync.enroll.pipeline import SHIPPED_DIR
    from stablesync.enroll.validate import read_segment
    from stablesync.media import read_audio

    clip = tiny_corpus / "clip00000.mp4"
    segment = read_segment(clip, read_audio(clip, RATE_HZ), 0.0, 2.0)
    # another voice for the first second, then a pause where the clip's own voice goes on (two
    # synthetic voices' loudness alone correlates 0.6 over 2 s: the pause tells them apart)
    other = read_audio(tiny_corpus / "clip00002.mp4", RATE_HZ)[: 2 * RATE_HZ].copy()
    other[RATE_HZ:] = 0.0
    out = cross_driven(segment, other, {"personal": SHIPPED_DIR, "shipped": SHIPPED_DIR})
    for side in ("personal", "shipped"):
        figures = out[side]
        assert set(CROSS_KEYS) <= set(figures), figures
        assert all(np.isfinite(figures[k]) for k in CROSS_KEYS), figures
        assert figures["margin"] == pytest.approx(figures["r_new"] - figures["r_own"])
        # the mouth follows the speech it is driven by, not the clip's own
        assert figures["r_new"] > 0.5 and figures["margin"] > 0.2, figures
        assert figures["teal_frames"] == 0 and figures["upper_psnr_db"] > 30.0, figures
    assert set(out["personal_at_least_as_good"]) >= {"r_new", "margin", "teal_frames"}
