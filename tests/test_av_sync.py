"""The mouth-follows-speech measure (`stablesync.evaluation.av_sync`) on real corpus videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stablesync.evaluation.av_sync import lagged_correlation, mouth_series, series_sync
from stablesync.media import read_audio


def test_lagged_correlation_finds_a_known_shift() -> None:
    rng = np.random.default_rng(0)
    env = np.convolve(rng.random(200), np.ones(4) / 4, mode="same")
    mouth = np.roll(env, 3)  # the mouth moves 3 frames after the sound
    assert lagged_correlation(mouth, env, 3) > 0.99
    assert lagged_correlation(mouth, env, 0) < 0.9
    assert np.isnan(lagged_correlation(np.zeros(200), env, 0))  # a still mouth: no measure


@pytest.mark.slow
def test_corpus_clip_mouth_follows_its_speech_and_not_reversed_speech(tiny_corpus: Path) -> None:
    video = tiny_corpus / "clip00000.mp4"
    pts, opening = mouth_series(video)
    audio = read_audio(video)
    sync = series_sync(pts, opening, audio)
    assert sync.frames == 50 and sync.tracked_fraction == 1.0
    assert sync.corr_at_best > 0.5 and abs(sync.best_lag_frames) <= 2, sync
    assert sync.mouth_std > 0.02
    wrong = series_sync(pts, opening, audio[::-1].copy())
    assert wrong.corr_at_zero < sync.corr_at_zero - 0.3, (wrong, sync)
