"""DistributedDataParallel set-up from torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK).

One process per GPU (nccl), or per CPU worker (gloo). Without torchrun's variables the trainer
runs as a single process and nothing here touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistEnv:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        device = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        return DistEnv(device=device)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        device, backend = torch.device("cuda", local), "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=device)


def shutdown(env: DistEnv) -> None:
    if env.enabled and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, env: DistEnv) -> nn.Module:
    """DDP around a trainable module when distributed; the module itself otherwise."""
    if not env.enabled:
        return module
    ids = [env.local_rank] if env.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    if not env.enabled:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: dict[str, float], env: DistEnv) -> dict[str, float]:
    if not env.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return {k: float(v) / env.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def barrier(env: DistEnv) -> None:
    if env.enabled:
        dist.barrier()


def broadcast_buffers(modules: dict[str, nn.Module], env: DistEnv) -> None:
    """Rank 0's buffers (batch-norm running statistics) to every rank.

    DDP broadcasts them at the start of each forward, so after the last forward of a step each
    rank holds statistics of its own batch; this makes the replicas identical before a save.
    """
    if not env.enabled:
        return
    for name in sorted(modules):
        for buf in modules[name].buffers():
            dist.broadcast(buf.data, src=0)
