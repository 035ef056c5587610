"""Fine-tuning G_S on the take's pauses: this face's closed mouth.

G_S is only ever run on the silent mel window (all of it the scale's floor, what the live path
feeds it when nobody speaks) and draws the closed mouth that G_L's identity reference starts
from. A take's pauses are not digital silence (room noise, breath), so G_S never met them in
its training; here the frames of the take's pauses are paired with the exact silent window and
G_S learns to draw them: the person's own lips at rest, not the corpus's.

The frames G_S learns from (`rest_frames`) are the take's pause frames: the loudness of a
frame's generator window (its loudest mel column, averaged over the mel bands) at least
`PauseRule.min_depth_db` under the take's loud level (its 95th percentile), in a run of at least
`min_run` such frames, less `trim` frames at each end of the run (the mouth closing and
opening). The depth is counted from the loud level only, so neither a take without pauses (its
quietest words stay above) nor digital silence somewhere in it (which would set a quiet level
no room noise reaches) misleads it. A take of continuous speech with fewer than `min_frames`
pause frames gives the frames whose lips are closed instead (`ClosedRule`: the inner-lip gap,
from the face mesh of the prepared take, at most `max_opening` eye distances: the closures
between words and on m, b, p). With fewer than `min_frames` of those too, G_S stays the shipped
one.
Losses: L1 + (1 - SSIM), as G_S's own stage without the adversarial term; identity references
from the same pool of the take's frames as G_L's fine-tune.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from stablesync.audio import MelConfig
    from stablesync.train.config import GeneratorStage
    from stablesync.train.data import Clip, GeneratorBatch, PreparedData
    from stablesync.train.generator_stage import GeneratorTask


@dataclass(frozen=True)
class PauseRule:
    min_depth_db: float = 20.0  # under the take's loud level
    min_run: int = 4  # frames (160 ms at 25 fps)
    trim: int = 1  # frames dropped at each end of a run
    min_frames: int = 8  # fewer pause frames than this: G_S is not fine-tuned


@dataclass(frozen=True)
class ClosedRule:
    max_opening: float = 0.05  # inner-lip gap over the eye distance (an open vowel is 0.1-0.3)
    min_frames: int = 8


def closed_frames(landmarks: NDArray[np.float32], rule: ClosedRule = ClosedRule()) -> NDArray[np.int64]:
    """Indices of the frames whose lips are closed (`landmarks`: (T, 468, 2) face mesh points)."""
    from stablesync.face.landmarks import mouth_opening

    opening = np.asarray([mouth_opening(points) for points in landmarks], dtype=np.float64)
    return np.flatnonzero(opening <= rule.max_opening).astype(np.int64)


def rest_frames(
    clip: Clip, landmarks: NDArray[np.float32] | None, lookahead_ms: float, cfg: MelConfig
) -> tuple[NDArray[np.int64], str]:
    """The frames G_S learns the closed mouth from, and what they are ("pause frames",
    "frames with closed lips", or "" with none)."""
    pauses = pause_frames(clip, lookahead_ms, cfg)
    if len(pauses) >= PauseRule().min_frames:
        return pauses, "pause frames"
    closed = closed_frames(landmarks) if landmarks is not None else np.zeros(0, np.int64)
    if len(closed) >= ClosedRule().min_frames:
        return closed, "frames with closed lips"
    return np.zeros(0, np.int64), ""


def window_loudness(clip: Clip, lookahead_ms: float, cfg: MelConfig) -> NDArray[np.float64]:
    """Per frame, the loudest column of its generator mel window, averaged over the mel bands."""
    from stablesync.train.data import generator_mel

    return np.asarray(
        [generator_mel(clip, t, lookahead_ms, cfg)[0].mean(0).max() for t in range(clip.n_frames)],
        dtype=np.float64,
    )


def pause_frames(
    clip: Clip, lookahead_ms: float, cfg: MelConfig, rule: PauseRule = PauseRule()
) -> NDArray[np.int64]:
    """Indices of the clip's frames inside pauses of its speech (see the module's docstring)."""
    loudness = window_loudness(clip, lookahead_ms, cfg)
    if loudness.size == 0:
        return np.zeros(0, np.int64)
    loud = float(np.percentile(loudness, 95.0))
    per_db = 2.0 * cfg.max_abs_value / -cfg.min_level_db  # the mel scale is linear in dB
    low = loudness <= loud - rule.min_depth_db * per_db
    picked: list[int] = []
    t = 0
    while t < len(low):
        if not low[t]:
            t += 1
            continue
        end = t
        while end < len(low) and low[end]:
            end += 1
        if end - t >= rule.min_run:
            picked.extend(range(t + rule.trim, end - rule.trim))
        t = end
    return np.asarray(picked, dtype=np.int64)


def silent_stage(
    generator: GeneratorStage, out_dir: str, steps: int, checkpoint_every: int
) -> GeneratorStage:
    """G_S's stage beside G_L's `generator` stage: the same data, judge and schedule settings,
    `steps` long, no sync or triplet term (G_S never has them)."""
    schedule = dataclasses.replace(
        generator.schedule,
        steps=steps,
        warmup_steps=max(1, min(10, steps // 10)),
        log_every=max(1, min(10, steps)),
        val_every=max(checkpoint_every, steps),
        checkpoint_every=checkpoint_every,
    )
    weights = dataclasses.replace(generator.weights, sync=0.0, triplet=0.0)
    return dataclasses.replace(
        generator, out_dir=out_dir, silent="", sync_loss="none", weights=weights, schedule=schedule
    )


def silent_task(
    stage: GeneratorStage, pool: NDArray[np.int64], pauses: NDArray[np.int64], views: int
) -> GeneratorTask:
    """G_S's training task on the take: targets = pause frames, audio = the exact silent
    window, identity = a frame of `pool` as it is or as one of `views` views
    (`stablesync.enroll.finetune.drawn_references`)."""
    from stablesync.enroll.finetune import drawn_references
    from stablesync.train.data import to_chw
    from stablesync.train.distributed import init_distributed
    from stablesync.train.generator_stage import GeneratorTask

    class SilentEnrollTask(GeneratorTask):
        def _draw(self, data: PreparedData, rng: np.random.Generator, split: str) -> GeneratorBatch:
            from stablesync.train.data import WINDOW_FRAMES, GeneratorBatch

            # pauses and references of the training part (the held-aside seconds stay unseen)
            clip = self.train_data.clips[0]
            b = self.cfg.schedule.batch_size
            targets = pauses[rng.integers(len(pauses), size=b)]
            refs = pool[rng.integers(len(pool), size=b)]
            silent = self.model_cfg.mel.silence_value
            window = np.full((b, 1, 1, self.model_cfg.mel.n_mels, WINDOW_FRAMES), silent, np.float32)
            return GeneratorBatch(
                targets=to_chw(clip.frames[targets])[:, None],
                mels=window,
                sync_mels=window[:, 0],
                references=drawn_references(clip.frames[refs], rng, views),
            )

    return SilentEnrollTask(stage, "silent", init_distributed())
