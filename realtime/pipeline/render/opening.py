"""How wide the rendered mouth opens: the generated opening stretched to a speaker's range.

The generator, trained with pixel losses on a synthetic corpus, opens the mouth less than real
speakers do, and on some faces hardly at all (on one real photo its inner-lip gap varied by a
quarter of a real speaker's). The renderer therefore maps the generated opening g (inner-lip gap
over eye distance, `mouth_opening`) onto the range it should have:

    opening = rest + (g - rest) * gain,  gain = clip(target_std / std(g), min_gain, max_gain)

over a sliding window of recent frames (the gain starts at `start_gain` and moves toward the
window's as frames come in), `rest` the window's low percentile of g (closed lips stay
closed). The target is the person's own range where the frame's own mouth is seen talking (a
webcam or a video: the std of its own opening over the same window), and a typical speaker's
range where it does not move (a photo, or someone silent while another voice drives the lips).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from stablesync.realtime.pipeline.render.mouth import soft_cap


@dataclass(frozen=True)
class OpeningConfig:
    window_frames: int = 250  # 10 s at 25 fps
    min_frames: int = 5
    # The gain before anything is learnt. The generator opens real faces' mouths about half as
    # wide as real speakers (the five real videos re-dubbed with their own audio: amplitude
    # ratio 0.23-1.22 at 1.25, median 0.62), so it starts at 2 (on the synthetic corpus 1.25
    # matched: the source's opening std was 1.25x the generated one's, median of 12 clips).
    start_gain: float = 2.0
    min_gain: float = 1.0
    max_gain: float = 3.0
    # openings bend softly toward this (eye distances; a wide "ah" is about 0.3)
    max_opening: float = 0.3
    rest_percentile: float = 10.0
    # the window's estimate is weighed against the start gain as if that were this many frames:
    # the gain moves smoothly from the start gain instead of jumping once the window fills (a
    # jump lowered the opening's r with the speech by up to 0.09 on 6-s clips)
    prior_frames: int = 25
    # A typical speaker's opening std in eye distances. Chosen from the real talking videos the
    # project measures on (their inner-lip gap std, median of five: 0.022 face heights; a face
    # height is about 2.6 eye distances), not fitted to any output.
    typical_std: float = 0.057
    # The frame's own mouth counts as talking from this opening std (eye distances): below it,
    # the typical range is the target; above twice it, the person's own; between, a blend.
    own_talking_std: float = 0.012


class OpeningRange:
    """One stream's opening mapping (one thread)."""

    def __init__(self, cfg: OpeningConfig = OpeningConfig()) -> None:
        self.cfg = cfg
        self._generated: deque[float] = deque(maxlen=cfg.window_frames)
        self._own: deque[float] = deque(maxlen=cfg.window_frames)

    def reset(self) -> None:
        self._generated.clear()
        self._own.clear()

    def observe_own(self, opening: float) -> None:
        """The frame's own mouth opening (eye distances), every frame."""
        self._own.append(opening)

    def target_std(self) -> float:
        own = float(np.std(self._own)) if len(self._own) >= self.cfg.min_frames else 0.0
        lo = self.cfg.own_talking_std
        t = float(np.clip((own - lo) / lo, 0.0, 1.0))
        return (1.0 - t) * self.cfg.typical_std + t * own

    def map(self, generated: float, speaking: bool = True) -> float:
        """The opening to render for the generated opening `generated` (eye distances);
        `speaking` frames (not silent windows) are the ones the range is learnt from."""
        if speaking:
            self._generated.append(generated)
        n = len(self._generated)
        if n < self.cfg.min_frames:
            return generated * self.cfg.start_gain
        window = np.asarray(self._generated)
        spread = float(window.std())
        measured = float(np.clip(self.target_std() / max(spread, 1e-6), self.cfg.min_gain, self.cfg.max_gain))
        # the estimate counts as much as `prior_frames` frames of the start gain
        k = self.cfg.prior_frames
        gain = (k * self.cfg.start_gain + n * measured) / (k + n)
        rest = float(np.percentile(window, self.cfg.rest_percentile))
        mapped = max(rest + (generated - rest) * gain, 0.0)
        return float(soft_cap(np.array([mapped], np.float32), self.cfg.max_opening)[0])
