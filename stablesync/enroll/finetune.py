"""Fine-tuning the shipped G_S and G_L on the take within a time budget.

The run is `stablesync.train`'s generator stage (its loop: progress bar with ETA, checkpoints,
exact `--resume`) with `init` and `silent` = the shipped lipsync checkpoint. G_L learns the
person's mouth from L1, 1 - SSIM and the adaptive triplet loss on the lower half, and keeps it
moving with the speech by the paper's stabilized sync loss, judged by the AVSyncNet shipped
beside the weights (`syncnet.safetensors`; 5 consecutive frames per window). Without that file
(an older export) the sync term is off and the AVSyncNet the stage needs for its audio encoder
is written from the shipped checkpoint's (its visual half never runs): fitting a few seconds of
footage by pixels alone, the mouth then nearly stops moving after a few hundred steps. The
adversarial term is off (a fresh discriminator does not settle in minutes).
Before G_L, G_S learns this face's closed mouth (`stablesync.enroll.silent`: the take's pauses,
or its frames with closed lips) for a share `SILENT_SHARE` of the budget (a quarter of `steps`
when those are given), and G_L's identity references then go through that G_S; a take with
neither keeps the shipped G_S.
Both draw their identity references from a pool of the take's frames, each as it is or as one
of the `reference_views` shifted views (`stablesync.face.reference_views`) the profile's sessions
then average (`Plan.reference_views`, written into the profile's manifest); enroll's default,
`REFERENCE_VIEWS` = 1, draws them as they are.

The time budget becomes a number of steps: a few steps of a throwaway copy of the task are
timed first (G_S's and G_L's), and the step counts (with the schedule they fix) are stored in
`plan.json`, so a resumed run keeps the schedule it started with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from numpy.typing import NDArray

from stablesync.errors import UserError
from stablesync.face.reference_views import VIEWS, view_crop

if TYPE_CHECKING:
    from stablesync.train.config import GeneratorStage
    from stablesync.train.data import GeneratorBatch
    from stablesync.train.generator_stage import GeneratorTask

PRESET = "cpu-rt"
SYNC_FRAMES = 5  # frames per window the sync term judges (the preset's)
NO_SYNC_FRAMES = 1  # without a sync term: one frame per window, the cheapest step
SYNC_WEIGHT = 2.0  # the paper's weight of L_ss (as configs/cpu-rt/finetune/generator.toml)
# L_ss on frames driven by another moment's speech (LossWeights.cross_sync): off. At weight 2 it
# followed other speech a little better and re-dubbed the take a little worse, within the spread
# between seeds, for 45% more time a step (benchmarks/RESULTS.md, "enroll: L_ss on other speech")
CROSS_SYNC_WEIGHT = 0.0
WARM_BATCH = 16
BUDGET_FOR_STEPS = 0.85
REFERENCE_POOL = 24  # frames of the take used as identity references
# > 1: each reference drawn as it is or as one of the first this many `VIEWS`, and the profile's
# export averages as many (Manifest.reference_views); 1: references as they are, and the profile
# runs on its reference crop as it is. Fine-tuned on exact crops, a profile lost 6.5 dB of mouth
# PSNR on talk1 averaging 8 views (RESULTS.md, session 35); fine-tuned on 8 shifted views and
# averaging them, it did as well as the exact crops on average over five clips, better on talk2-3's
# r, worse on talk1's r and on the opening's amplitude (RESULTS.md, session 36): enroll keeps 1
REFERENCE_VIEWS = 1
SILENT_SHARE = 0.15  # of the training budget spent on G_S (when the take has rest frames)
SILENT_STEPS_PER_STEP = 0.25  # G_S steps per G_L step when `steps` is given


@dataclass(frozen=True)
class FinetuneConfig:
    prepared: Path
    out_dir: Path  # the training run (state, checkpoints, log)
    init: Path  # the lipsync checkpoint to start from (the shipped one)
    budget_s: float = 360.0
    steps: int = 0  # > 0: exactly this many steps, no timing
    batch_size: int = 8
    lr: float = 1e-4
    threads: int = 2
    seed: int = 0
    cross_sync: float = CROSS_SYNC_WEIGHT
    checkpoint_every_s: float = 30.0
    min_steps: int = 5  # even when the budget allows fewer
    calibration_steps: int = 3
    reference_views: int = REFERENCE_VIEWS  # 1: references as they are


@dataclass(frozen=True)
class Plan:
    steps: int  # G_L's
    step_s: float  # measured seconds per G_L step (0 when `steps` was given)
    checkpoint_every: int
    silent_steps: int = 0  # G_S's (0: the shipped G_S; plans written before G_S was fine-tuned)
    rest_frames: tuple[int, ...] = ()  # the take's frames G_S learns the closed mouth from
    rest_kind: str = ""  # what they are: "pause frames" or "frames with closed lips"
    reference_views: int = 1  # the views references are drawn from (1: as they are; older plans)


def reference_pool(n_frames: int) -> NDArray[np.int64]:
    """The frames of the take that serve as identity references (evenly spread)."""
    return np.linspace(0, n_frames - 1, min(REFERENCE_POOL, n_frames)).round().astype(np.int64)


def appearances(views: int) -> int:
    """How many ways a reference is drawn: as it is, or as one of `views` views (views > 1)."""
    return 1 if views == 1 else views + 1


def appear(frame: NDArray[np.uint8], appearance: int) -> NDArray[np.uint8]:
    """A reference frame as it is (0) or as view `appearance - 1` of `VIEWS`."""
    return frame if appearance == 0 else view_crop(frame, VIEWS[appearance - 1])


def drawn_references(frames: NDArray[np.uint8], rng: np.random.Generator, views: int) -> NDArray[np.float32]:
    """(N, S, S, 3) uint8 reference frames -> (N, 3, S, S) float, each as it is or as one of the
    first `views` of `VIEWS`, drawn at random (with 1 view: as they are, drawing nothing)."""
    from stablesync.train.data import to_chw

    if views == 1:
        return to_chw(frames)
    picks = rng.integers(appearances(views), size=len(frames))
    return to_chw(np.stack([appear(f, int(k)) for f, k in zip(frames, picks, strict=True)]))


def take_rest_frames(cfg: FinetuneConfig) -> tuple[NDArray[np.int64], str]:
    """The frames of the take's training part G_S learns from, and what they are
    (`stablesync.enroll.silent.rest_frames`)."""
    from stablesync.enroll.silent import rest_frames
    from stablesync.models import get_preset
    from stablesync.train.data import PreparedData

    data = PreparedData(cfg.prepared, "train")
    clip = data.clips[0]
    return rest_frames(clip, data.landmarks(clip), get_preset(PRESET).lipsync.lookahead_ms, data.mel_cfg)


def shipped_syncnet(cfg: FinetuneConfig) -> Path | None:
    """The AVSyncNet shipped beside `cfg.init`, if any: the sync term's judge."""
    path = cfg.init.parent / "syncnet.safetensors"
    return path if path.is_file() else None


def _syncnet_path(cfg: FinetuneConfig) -> Path:
    return shipped_syncnet(cfg) or cfg.out_dir.parent / "audio_syncnet.safetensors"


def write_audio_syncnet(init: Path, path: Path) -> None:
    """An AVSyncNet checkpoint carrying `init`'s audio encoder (what the stage reads it from)."""
    from stablesync import checkpoint
    from stablesync.models import get_preset
    from stablesync.models.syncnet import AVSyncNet
    from stablesync.train.syncnet_stage import adopt_audio_encoder

    if path.is_file():
        return
    preset = get_preset(PRESET).syncnet
    # its visual half is never run: the smallest one that builds
    visual = dataclasses.replace(preset.visual, n_frames=NO_SYNC_FRAMES, channels=(8,), blocks=(1,))
    net_cfg = dataclasses.replace(preset, visual=visual)
    net = AVSyncNet(net_cfg)
    adopt_audio_encoder(net, str(init))
    checkpoint.save(path, net, net_cfg)


def stage_config(
    cfg: FinetuneConfig, steps: int, checkpoint_every: int, silent: Path | None = None
) -> GeneratorStage:
    """G_L's stage; its identity references go through `silent`'s G_S (default: the shipped one)."""
    from stablesync.train.config import GeneratorStage, LossWeights, Schedule

    schedule = Schedule(
        steps=steps,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        warmup_steps=max(1, min(20, steps // 10)),
        final_lr_fraction=0.1,
        seed=cfg.seed,
        log_every=max(1, min(10, steps)),
        val_every=max(checkpoint_every, steps // 3),  # validation is a step's cost: a few per run
        val_batches=1,
        checkpoint_every=checkpoint_every,
        threads=cfg.threads,
    )
    judged = shipped_syncnet(cfg) is not None
    return GeneratorStage(
        data=str(cfg.prepared),
        out_dir=str(cfg.out_dir),
        syncnet=str(_syncnet_path(cfg)),
        preset=PRESET,
        silent=str(silent or cfg.init),
        init=str(cfg.init),
        use_silent=True,
        sync_loss="stabilized" if judged else "none",
        sync_frames=SYNC_FRAMES if judged else NO_SYNC_FRAMES,
        weights=LossWeights(
            gan=0.0,
            pixel=10.0,
            perceptual=1.0,
            feature_matching=0.0,
            sync=SYNC_WEIGHT if judged else 0.0,
            cross_sync=cfg.cross_sync if judged else 0.0,
            triplet=0.5,
        ),
        schedule=schedule,
    )


class FrozenCache:
    """Outputs of a frozen network per input row, keyed by the row's bytes: the take's frames
    and mel windows recur in every batch, so G_S and the audio encoder run once for each."""

    def __init__(self) -> None:
        self.rows: dict[bytes, torch.Tensor] = {}

    def __call__(self, net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        keys = [hashlib.blake2b(row.numpy().tobytes(), digest_size=16).digest() for row in x.cpu()]
        todo = sorted({i for i, k in enumerate(keys) if k not in self.rows})
        for start in range(0, len(todo), WARM_BATCH):
            part = todo[start : start + WARM_BATCH]
            with torch.no_grad():
                out = net(x[part])
            for i, row in zip(part, out, strict=True):
                self.rows[keys[i]] = row
        return torch.stack([self.rows[k] for k in keys])


@dataclass
class FrozenCaches:
    identity: FrozenCache = field(default_factory=FrozenCache)  # reference -> G_S(reference)
    audio: FrozenCache = field(default_factory=FrozenCache)  # mel window -> audio embedding


def enroll_task(stage: GeneratorStage, caches: FrozenCaches, views: int) -> GeneratorTask:
    """The generator stage's task, its frozen parts (G_S identity, audio encoder) computed once
    per reference (a pool frame in one of its `appearances(views)`) and mel window and then read
    from `caches`."""
    from stablesync.train.data import PreparedData, to_chw
    from stablesync.train.distributed import init_distributed
    from stablesync.train.generator_stage import GeneratorTask

    class EnrollTask(GeneratorTask):
        def pool(self) -> NDArray[np.int64]:
            return reference_pool(self.train_data.clips[0].n_frames)

        def warm(self) -> None:
            """G_S of every pool frame in every appearance, computed now (the cost of the first
            steps otherwise)."""
            frames = self.train_data.clips[0].frames[self.pool()]
            seen = np.stack([appear(f, k) for k in range(appearances(views)) for f in frames])
            caches.identity(self.model.silence, torch.from_numpy(to_chw(seen)).to(self.env.device))

        def _draw(self, data: PreparedData, rng: np.random.Generator, split: str) -> GeneratorBatch:
            b = super()._draw(data, rng, split)
            if split != "train":
                return b
            # identity references from a fixed pool of the take's frames: G_S runs once for each
            pool = self.pool()
            picks = pool[rng.integers(len(pool), size=len(b.references))]
            references = drawn_references(data.clips[0].frames[picks], rng, views)
            return dataclasses.replace(b, references=references)

        def _inputs(self, b: GeneratorBatch) -> dict[str, torch.Tensor]:
            """As the stage's, with G_S's and the audio encoder's outputs read from `caches`."""
            dev = self.env.device
            mels = torch.from_numpy(b.mels).to(dev).flatten(0, 1)
            identity = caches.identity(self.model.silence, torch.from_numpy(b.references).to(dev))
            return {
                "targets": torch.from_numpy(b.targets).to(dev).flatten(0, 1),
                "audio": caches.audio(self.model.audio_encoder, mels),
                "identity": identity.repeat_interleave(b.targets.shape[1], 0),
                "sync_mels": torch.from_numpy(b.sync_mels).to(dev),
                "bsz": torch.tensor(b.targets.shape[0]),
            }

    task = EnrollTask(stage, "generator", init_distributed())
    task.warm()
    return task


def _seconds_per_step(task: GeneratorTask, cfg: FinetuneConfig) -> float:
    """Seconds per training step of `task`, a throwaway copy (its first step not counted)."""
    rng = np.random.default_rng(cfg.seed)
    task.train_step(rng, 0)
    start = time.perf_counter()
    for step in range(cfg.calibration_steps):
        task.train_step(rng, step + 1)
    return (time.perf_counter() - start) / cfg.calibration_steps


def measure_step_s(cfg: FinetuneConfig, caches: FrozenCaches) -> float:
    """Seconds per G_L step."""
    stage = stage_config(cfg, steps=cfg.calibration_steps + 1, checkpoint_every=1)
    task = enroll_task(stage, caches, cfg.reference_views)
    return _seconds_per_step(task, cfg)


def measure_silent_step_s(cfg: FinetuneConfig, rest: NDArray[np.int64]) -> float:
    """Seconds per G_S step."""
    from stablesync.enroll.silent import silent_stage, silent_task

    steps = cfg.calibration_steps + 1
    generator = stage_config(cfg, steps=steps, checkpoint_every=1)
    stage = silent_stage(generator, str(silent_dir(cfg)), steps, 1)
    return _seconds_per_step(silent_task(stage, _pool(cfg), rest, cfg.reference_views), cfg)


def silent_dir(cfg: FinetuneConfig) -> Path:
    """G_S's training run, beside G_L's."""
    return cfg.out_dir.parent / "train_silent"


def _pool(cfg: FinetuneConfig) -> NDArray[np.int64]:
    from stablesync.train.data import PreparedData

    return reference_pool(PreparedData(cfg.prepared, "train").clips[0].n_frames)


def _read_plan(path: Path) -> Plan:
    data = json.loads(path.read_text())
    names = {f.name for f in dataclasses.fields(Plan)}
    fields = {k: v for k, v in data.items() if k in names}  # older plans lack G_S's fields
    return Plan(**{**fields, "rest_frames": tuple(fields.get("rest_frames", ()))})


def make_plan(cfg: FinetuneConfig, caches: FrozenCaches) -> Plan:
    """The stored plan of this run, or a new one (timed unless `cfg.steps` fixes it)."""
    path = cfg.out_dir.parent / "plan.json"
    if path.is_file():
        return _read_plan(path)
    rest, kind = take_rest_frames(cfg)
    if not len(rest):
        print(
            "enroll: the take holds too few pauses or frames with closed lips to learn its closed"
            " mouth from; G_S stays the shipped one",
            flush=True,
        )
    if cfg.steps > 0:
        silent_steps = max(1, round(SILENT_STEPS_PER_STEP * cfg.steps)) if len(rest) else 0
        every = max(1, min(cfg.steps // 2, 50))
        plan = Plan(cfg.steps, 0.0, every, silent_steps, tuple(rest.tolist()), kind, cfg.reference_views)
    else:
        step_s = measure_step_s(cfg, caches)
        # checkpoints, validations and the export's share of the budget are not in `step_s`
        budget_s = BUDGET_FOR_STEPS * cfg.budget_s
        silent_steps = 0
        if len(rest):
            silent_step_s = measure_silent_step_s(cfg, rest)
            silent_steps = max(1, int(SILENT_SHARE * budget_s / silent_step_s))
            budget_s -= silent_steps * silent_step_s
        steps = max(cfg.min_steps, int(budget_s / step_s))
        every = max(1, int(cfg.checkpoint_every_s / step_s))
        plan = Plan(steps, step_s, every, silent_steps, tuple(rest.tolist()), kind, cfg.reference_views)
        print(
            f"enroll: {step_s:.2f} s per step: {steps} G_L steps"
            f" (and {silent_steps} of G_S) in the {cfg.budget_s / 60:.1f}-minute budget",
            flush=True,
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(plan)))
    return plan


def finetune_silent(cfg: FinetuneConfig, plan: Plan, out_dir: Path, resume: bool) -> Path:
    """Runs (or resumes) G_S's fine-tune on the plan's rest frames; -> its last checkpoint."""
    from stablesync.enroll.silent import silent_stage, silent_task
    from stablesync.train.distributed import init_distributed
    from stablesync.train.loop import run
    from stablesync.typed_config import to_dict

    every = max(1, min(plan.silent_steps // 2, 50))
    generator = stage_config(cfg, plan.steps, plan.checkpoint_every)
    stage = silent_stage(generator, str(out_dir), plan.silent_steps, every)
    print(f"enroll: G_S learns the closed mouth from {len(plan.rest_frames)} {plan.rest_kind}", flush=True)
    torch.manual_seed(cfg.seed)
    rest = np.asarray(plan.rest_frames, dtype=np.int64)
    task = silent_task(stage, _pool(cfg), rest, plan.reference_views)
    config = {"stage": "silent", "enroll": dataclasses.asdict(plan), **to_dict(stage)}
    state = out_dir / "state.safetensors"
    run(task, stage.schedule, out_dir, init_distributed(), resume and state.is_file(), config)
    return out_dir / "last.safetensors"


def finetune(cfg: FinetuneConfig, resume: bool) -> Path:
    """Runs (or resumes) G_S's and then G_L's fine-tune; -> the last checkpoint (a lipsync
    checkpoint holding both)."""
    from stablesync.train.distributed import init_distributed
    from stablesync.train.loop import run
    from stablesync.typed_config import to_dict

    if not 1 <= cfg.reference_views <= len(VIEWS):
        raise UserError(f"reference views {cfg.reference_views}: expected 1 to {len(VIEWS)}")
    torch.set_num_threads(cfg.threads)
    if shipped_syncnet(cfg) is None:
        write_audio_syncnet(cfg.init, _syncnet_path(cfg))
    for run_dir in (silent_dir(cfg), cfg.out_dir):
        if (run_dir / "state.safetensors").is_file() and not resume:
            raise UserError(f"{run_dir}: an interrupted enroll is there; pass --resume (or --overwrite)")
    caches = FrozenCaches()
    plan = make_plan(cfg, caches)
    silent = None
    if plan.silent_steps > 0:
        silent = finetune_silent(cfg, plan, silent_dir(cfg), resume)
        caches.identity = FrozenCache()  # the timing's references went through the shipped G_S
    stage = stage_config(cfg, plan.steps, plan.checkpoint_every, silent)
    torch.manual_seed(cfg.seed)
    task = enroll_task(stage, caches, plan.reference_views)
    config = {"stage": "generator", "enroll": dataclasses.asdict(plan), **to_dict(stage)}
    state = cfg.out_dir / "state.safetensors"
    run(task, stage.schedule, cfg.out_dir, init_distributed(), resume and state.is_file(), config)
    return cfg.out_dir / "last.safetensors"
