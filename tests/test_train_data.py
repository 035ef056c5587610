"""Drawing training windows: the silent-window oversampling G_S is trained with."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stablesync.audio import MelConfig, log_mel
from stablesync.train.data import (
    PreparedData,
    SilenceDraw,
    generator_mel,
    sample_generator_batch,
    silent_window_starts,
)

FPS, N_FRAMES, RATE, SIZE = 25.0, 50, 16_000, 16


@pytest.fixture(scope="module")
def half_silent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clip: noise for its first second, digital silence for its second."""
    root = tmp_path_factory.mktemp("half_silent")
    (root / "dataset.json").write_text(json.dumps({"layout_version": 1, "size": SIZE, "fps": FPS}))
    (root / "train.txt").write_text("c0\n")
    d = root / "clips" / "c0"
    d.mkdir(parents=True)
    n = int(N_FRAMES / FPS * RATE)
    audio = np.zeros(n, np.float32)
    audio[: n // 2] = 0.3 * np.random.default_rng(0).standard_normal(n // 2)
    np.save(d / "frames.npy", np.zeros((N_FRAMES, SIZE, SIZE, 3), np.uint8))
    np.save(d / "mel.npy", log_mel(audio))
    (d / "meta.json").write_text(json.dumps({"fps": FPS}))
    return root


def test_silent_starts_are_exactly_the_all_silent_windows(half_silent: Path) -> None:
    data = PreparedData(half_silent, "train")
    clip, cfg = data.clips[0], MelConfig()
    starts = silent_window_starts(clip, 5, 80.0, cfg)
    # the second half is silent; the windows reaching back into the noise are not
    assert len(starts) > 0 and starts.min() > N_FRAMES // 2 - 5 and starts.max() == N_FRAMES - 5
    for t0 in range(N_FRAMES - 4):
        windows = [generator_mel(clip, t, 80.0, cfg) for t in range(t0, t0 + 5)]
        all_silent = all(w.max() <= cfg.silence_value for w in windows)
        assert (t0 in starts) == all_silent


def test_silence_fraction_draws_that_share_of_silent_windows(half_silent: Path) -> None:
    data = PreparedData(half_silent, "train")
    floor = data.mel_cfg.silence_value

    def silent_share(fraction: float) -> float:
        draw = SilenceDraw.of(data, fraction, 1, 80.0)
        batch = sample_generator_batch(data, np.random.default_rng(1), 400, 1, 80.0, draw)
        return float(np.mean(batch.mels.reshape(400, -1).max(axis=1) <= floor))

    natural = silent_share(0.0)
    assert silent_share(1.0) == 1.0
    assert 0.15 < natural < 0.5  # the silent part's windows, as they come
    assert silent_share(0.8) == pytest.approx(0.8 + 0.2 * natural, abs=0.06)
    # without a draw the random stream is the one runs without oversampling always had
    a = sample_generator_batch(data, np.random.default_rng(2), 8, 1, 80.0)
    b = sample_generator_batch(data, np.random.default_rng(2), 8, 1, 80.0, SilenceDraw.of(data, 0.0, 1, 80.0))
    assert np.array_equal(a.mels, b.mels)
