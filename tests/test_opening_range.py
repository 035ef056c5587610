"""How wide the rendered mouth opens (`stablesync.realtime.pipeline.render.opening`): the generated opening
mapped onto the person's own range, or a typical speaker's where the frame's mouth does not move."""

from __future__ import annotations

import numpy as np
import pytest

from stablesync.realtime.pipeline.render.opening import OpeningConfig, OpeningRange


def _speech_like(frames: int, spread: float, rest: float, seed: int = 0) -> np.ndarray:
    """Openings (eye distances) at rest `rest`, opening by up to a few `spread` like syllables."""
    rng = np.random.default_rng(seed)
    syllables = np.clip(np.sin(np.arange(frames) * 2 * np.pi / 6.0), 0.0, None)
    return rest + spread * 2.0 * syllables * rng.uniform(0.5, 1.0, frames)


def _map(opening: OpeningRange, generated: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
    out = []
    for i, g in enumerate(generated):
        if own is not None:
            opening.observe_own(float(own[i]))
        out.append(opening.map(float(g)))
    return np.array(out)


def test_a_still_face_gets_a_typical_speakers_range_in_step_with_the_generated_one() -> None:
    cfg = OpeningConfig()
    generated = _speech_like(500, spread=0.01, rest=0.03)
    mapped = _map(OpeningRange(cfg), generated, own=np.full(500, 0.05))  # a photo's mouth
    late = slice(250, None)
    # the generated range is a sixth of a typical speaker's: stretched by the gain's ceiling
    assert mapped[late].std() > 2.5 * generated[late].std()
    assert mapped[late].std() <= cfg.max_gain * generated[late].std() + 1e-6
    # a fixed affine map once the window is full: in step with the generated opening
    assert np.corrcoef(mapped[late], generated[late])[0, 1] > 0.999


def test_a_talking_face_gets_its_own_range() -> None:
    generated = _speech_like(500, spread=0.02, rest=0.03)
    own = _speech_like(500, spread=0.04, rest=0.02, seed=1)  # the person's own mouth, talking
    assert own.std() > 2 * OpeningConfig().own_talking_std
    mapped = _map(OpeningRange(), generated, own)
    ratio = mapped[250:].std() / own[250:].std()
    assert 0.8 < ratio < 1.25, ratio


def test_closed_lips_stay_closed_and_the_gain_starts_where_configured() -> None:
    cfg = OpeningConfig()
    opening = OpeningRange(cfg)
    assert opening.map(0.04) == pytest.approx(0.04 * cfg.start_gain, rel=1e-5)  # nothing learnt yet
    generated = _speech_like(300, spread=0.01, rest=0.03)
    mapped = _map(opening, generated)
    at_rest = generated <= np.percentile(generated, 5)
    # the rest opening is not stretched (the generated slit between closed lips stays a slit)
    assert mapped[at_rest][-10:].max() <= generated[at_rest].max() + 1e-6


def test_the_opening_bends_toward_its_ceiling() -> None:
    cfg = OpeningConfig()
    opening = OpeningRange(cfg)
    _map(opening, _speech_like(300, spread=0.01, rest=0.03))
    assert opening.map(5.0) <= cfg.max_opening + 1e-6
