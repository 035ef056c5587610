"""The training loop shared by the three stages: schedule, logs, validation, checkpoints, resume.

A stage is a `Task`: it owns its models and optimisers, draws its batches from the numpy
generator it is given, and saves its deployable checkpoint. This loop owns everything else:

    OUT/state.safetensors            resumable state (see state.py), every `checkpoint_every` steps
    OUT/checkpoints/step-NNNNNNNN.safetensors   deployable checkpoint at that step
    OUT/last.safetensors, OUT/best.safetensors  latest, and best on validation (lowest `score`)
    OUT/best.json, OUT/config.json   best step with its metrics; the resolved config
    OUT/log.csv, OUT/curves.png      losses and validation metrics; their curves

Under torchrun every rank runs this loop with its own batch generator (seeded by rank); only
rank 0 validates and writes files. At every checkpoint the ranks compare a digest of their
weights (kept in the state's JSON) and stop if the replicas ever differ.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from stablesync.errors import UserError
from stablesync.train.config import Schedule
from stablesync.train.distributed import (
    DistEnv,
    barrier,
    broadcast_buffers,
    gather_objects,
    mean_over_ranks,
)
from stablesync.train.logs import CsvLog, plot_curves
from stablesync.train.state import load_state, save_state


class Task(Protocol):
    name: str
    validation_id: str  # what else fixes the task's validation set ("" = the schedule alone)

    def state_modules(self) -> dict[str, nn.Module]: ...

    def optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def train_step(self, rng: np.random.Generator, step: int) -> dict[str, float]: ...

    def validate(self) -> dict[str, float]: ...

    def save_checkpoint(self, path: Path) -> None: ...


def lr_factor(step: int, s: Schedule) -> float:
    """Linear warm-up over `warmup_steps`, then cosine from 1 to `final_lr_fraction`."""
    if step < s.warmup_steps:
        return (step + 1) / s.warmup_steps
    span = max(s.steps - s.warmup_steps, 1)
    progress = min((step - s.warmup_steps) / span, 1.0)
    return s.final_lr_fraction + (1.0 - s.final_lr_fraction) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_lr(optimizers: dict[str, torch.optim.Optimizer], factor: float) -> None:
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * factor


def params_digest(modules: dict[str, nn.Module]) -> str:
    """sha256 of every weight and buffer: replicas under DDP must agree bit for bit."""
    h = hashlib.sha256()
    for name in sorted(modules):
        for key, value in sorted(modules[name].state_dict().items()):
            h.update(key.encode())
            h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def validation_signature(s: Schedule, task_id: str = "") -> str:
    """What fixes the validation set: scores of runs with different signatures do not compare."""
    base = f"batch {s.batch_size} x {s.val_batches} @ seed {s.seed}"
    return f"{base}, {task_id}" if task_id else base


def _torch_rng() -> str:
    return base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()


def _set_torch_rng(text: str) -> None:
    torch.set_rng_state(torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8))


@dataclass
class RunResult:
    step: int
    best_score: float
    best_step: int
    last_val: dict[str, float]


def run(
    task: Task, schedule: Schedule, out_dir: Path, env: DistEnv, resume: bool, config: dict[str, Any]
) -> RunResult:
    out_dir = Path(out_dir)
    state_path = out_dir / "state.safetensors"
    if not resume and state_path.exists():
        raise UserError(f"{out_dir}: already holds a training run; pass --resume or choose another out_dir")
    rng = np.random.default_rng([schedule.seed, env.rank])
    step, best_score, best_step = 0, math.inf, -1
    if resume:
        info = load_state(state_path, task.state_modules(), task.optimizers())
        step, best_score, best_step = int(info["step"]), float(info["best_score"]), int(info["best_step"])
        if info.get("validation") != validation_signature(schedule, task.validation_id):
            # another validation set (e.g. a new batch size): the old best is not comparable
            best_score, best_step = math.inf, -1
            if env.is_main:
                print(f"{out_dir}: the validation set changed; the best checkpoint restarts at step {step}")
        ranks = info["rng"]
        if len(ranks) != env.world_size:
            raise UserError(f"{state_path}: saved with {len(ranks)} processes, resumed with {env.world_size}")
        rng.bit_generator.state = ranks[env.rank]["numpy"]
        _set_torch_rng(ranks[env.rank]["torch"])
    log = None
    if env.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        log = CsvLog(out_dir / "log.csv", step if resume else None)
    bar = tqdm(
        total=schedule.steps,
        initial=step,
        desc=task.name,
        disable=not env.is_main,
        mininterval=5.0,
        ascii=True,
    )
    sums: dict[str, list[float]] = defaultdict(list)
    last_val: dict[str, float] = {}
    while step < schedule.steps:
        set_lr(task.optimizers(), lr_factor(step, schedule))
        for k, v in task.train_step(rng, step).items():
            sums[k].append(v)
        step += 1
        bar.update(1)
        if step % schedule.log_every == 0 or step == schedule.steps:
            means = mean_over_ranks({k: float(np.mean(v)) for k, v in sums.items()}, env)
            means["lr"] = lr_factor(step - 1, schedule) * schedule.lr
            sums.clear()
            bar.set_postfix({k: f"{v:.3g}" for k, v in list(means.items())[:4]}, refresh=False)
            if log is not None:
                log.write(step, "train", means)
        if step % schedule.val_every == 0 or step == schedule.steps:
            if env.is_main:
                last_val = task.validate()
                assert log is not None
                log.write(step, "val", last_val)
                if last_val["score"] < best_score:
                    best_score, best_step = last_val["score"], step
                    task.save_checkpoint(out_dir / "best.safetensors")
                    (out_dir / "best.json").write_text(
                        json.dumps({"step": step, **last_val}, indent=2) + "\n"
                    )
            barrier(env)
        if step % schedule.checkpoint_every == 0 or step == schedule.steps:
            broadcast_buffers(task.state_modules(), env)
            ranks = gather_objects(
                {
                    "numpy": rng.bit_generator.state,
                    "torch": _torch_rng(),
                    "digest": params_digest(task.state_modules()),
                },
                env,
            )
            if len({r["digest"] for r in ranks}) != 1:  # every rank sees all digests: all stop together
                raise RuntimeError(f"step {step}: the {env.world_size} replicas' weights differ")
            if env.is_main:
                task.save_checkpoint(out_dir / "checkpoints" / f"step-{step:08d}.safetensors")
                task.save_checkpoint(out_dir / "last.safetensors")
                info = {
                    "step": step,
                    "best_score": best_score,
                    "best_step": best_step,
                    "rng": ranks,
                    "validation": validation_signature(schedule, task.validation_id),
                }
                save_state(state_path, task.state_modules(), task.optimizers(), info)
                plot_curves(out_dir / "log.csv", out_dir / "curves.png", f"{task.name}: {out_dir.name}")
            barrier(env)
    bar.close()
    return RunResult(step=step, best_score=best_score, best_step=best_step, last_val=last_val)
