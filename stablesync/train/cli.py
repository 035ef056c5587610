"""`stablesync train syncnet|silent|generator --config FILE [--resume]`.

Multi-GPU / multi-node: start the same command under torchrun, e.g.
`torchrun --nproc_per_node 4 -m stablesync train generator --config configs/cpu-rt/generator.toml`
(one process per GPU; on CPU each process is a gloo worker).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import cast

from stablesync.train.config import STAGES, GeneratorStage, Stage, StageConfig, SyncNetStage, load_config


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train a stage: syncnet (AVSyncNet), silent (G_S), generator (G_L), in this order.",
    )
    p.add_argument("stage", choices=STAGES, help="which stage to train (in this order)")
    p.add_argument("--config", required=True, help="TOML config file (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR/state.safetensors")
    return p


def train(stage: Stage, cfg: StageConfig, resume: bool) -> dict[str, object]:
    """Runs one stage to `cfg.schedule.steps` (under torchrun: this rank's share)."""
    import torch

    from stablesync.train.distributed import init_distributed, shutdown
    from stablesync.train.generator_stage import GeneratorTask
    from stablesync.train.loop import Task, run
    from stablesync.typed_config import to_dict

    schedule = cfg.schedule
    if schedule.threads > 0:
        torch.set_num_threads(schedule.threads)
    env = init_distributed()
    try:
        torch.manual_seed(schedule.seed)
        task: Task
        if stage == "syncnet":
            from stablesync.train.syncnet_stage import SyncNetTask

            task = SyncNetTask(cast(SyncNetStage, cfg), env)
        else:
            task = GeneratorTask(cast(GeneratorStage, cfg), stage, env)
        result = run(task, schedule, Path(cfg.out_dir), env, resume, {"stage": stage, **to_dict(cfg)})
    finally:
        shutdown(env)
    return {
        "stage": stage,
        "rank": env.rank,
        "out_dir": cfg.out_dir,
        "step": result.step,
        "best_step": result.best_step,
        "best_score": result.best_score,
        "last_val": result.last_val,
    }


def main(args: argparse.Namespace) -> int:
    stage, cfg = load_config(args.config, expect_stage=cast(Stage, args.stage))
    summary = train(stage, cfg, args.resume)
    if summary["rank"] == 0:
        print(json.dumps(summary))
    return 0
