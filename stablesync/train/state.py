"""The resumable training state in one safetensors file, without pickle.

Tensors (every module's state dict, every optimiser's per-parameter state) are safetensors
entries; the rest (step, optimiser param groups, the torch and numpy RNG states of every rank,
best validation score) is JSON in the file's metadata. Written atomically: a temporary
file renamed over the old one, so an interrupted save keeps the previous state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from stablesync.errors import UserError

STATE_FORMAT = "stablesync-train-state-1"


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], Any]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{name}.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def save_state(
    path: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    info: dict[str, Any],
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            tensors[f"model.{name}.{key}"] = value.detach().cpu().contiguous()
    optim_json = {}
    for name, opt in optimizers.items():
        t, j = _optimizer_tensors(name, opt)
        tensors.update(t)
        optim_json[name] = j
    meta = {"format": STATE_FORMAT, "info": json.dumps(info), "optimizers": json.dumps(optim_json)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_state(
    path: Path,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
) -> dict[str, Any]:
    """Restores modules and optimisers in place; returns the JSON info (step, RNG states, ...)."""
    if not path.is_file():
        raise UserError(f"{path}: no training state to resume from")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable training state ({str(exc).splitlines()[0]})") from None
    if meta.get("format") != STATE_FORMAT:
        raise UserError(f"{path}: not a stablesync training state")
    for name, module in modules.items():
        prefix = f"model.{name}."
        sd = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise UserError(
                f"{path}: state of {name} does not match the config ({str(exc).splitlines()[0]})"
            ) from None
    optim_json = json.loads(meta["optimizers"])
    for name, opt in optimizers.items():
        saved = optim_json[name]
        state: dict[int, dict[str, Any]] = {}
        prefix = f"optim.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                idx, field = key[len(prefix) :].split(".", 1)
                state.setdefault(int(idx), {})[field] = value
        for idx, scalars in saved["scalars"].items():
            state.setdefault(int(idx), {}).update(scalars)
        opt.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
    info: dict[str, Any] = json.loads(meta["info"])
    return info
