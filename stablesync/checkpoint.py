"""Checkpoints: safetensors weights with the architecture's config as JSON in the metadata.

Loading never unpickles: it reads the JSON config, rebuilds the architecture through the
registry and loads the tensors strictly. Missing, truncated or foreign files, and weights of
another architecture, give a one-line UserError naming the file.

Format versions: a checkpoint of an older format is brought up to `FORMAT_VERSION` on loading
by the chain of `MIGRATIONS` (version n -> n + 1, each a metadata step and a state-dict step,
as timm's `checkpoint_filter_fn`); only a format newer than this code is refused. A change to
the stored layout (renamed weights, a config field whose old meaning differs from its default)
bumps `FORMAT_VERSION` and adds the step from the previous version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from stablesync.errors import UserError
from stablesync.models.registry import ARCHITECTURES, arch_name, build
from stablesync.typed_config import from_dict, to_dict

FORMAT = "stablesync-checkpoint"
FORMAT_VERSION = 1
_OWN_KEYS = ("format", "format_version", "arch", "config")

StateDict = dict[str, torch.Tensor]


def _same_metadata(meta: dict[str, str]) -> dict[str, str]:
    return meta


def _same_tensors(tensors: StateDict) -> StateDict:
    return tensors


@dataclass(frozen=True)
class Migration:
    """Turns a checkpoint of format version n into version n + 1: its metadata (arch, the
    config JSON, run metadata) and its state dict (renamed, split or added weights)."""

    metadata: Callable[[dict[str, str]], dict[str, str]] = _same_metadata
    tensors: Callable[[StateDict], StateDict] = _same_tensors


# MIGRATIONS[n] takes format n to n + 1, for every n from the oldest readable format up to
# FORMAT_VERSION - 1. Format 1 is the first: nothing to migrate yet.
MIGRATIONS: Mapping[int, Migration] = {}


def save(
    path: str | Path,
    model: nn.Module,
    config: Any,
    extra: dict[str, str] | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Writes atomically (temporary file, then rename): an interrupted save leaves the previous
    file as it was and no half file.

    `dtype` (e.g. torch.float16) stores floating weights at lower precision for shipping;
    `load` casts them back to float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        t = v.detach().cpu()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        tensors[k] = t.contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "arch": arch_name(config),
        "config": json.dumps(to_dict(config)),
        **(extra or {}),
    }
    tmp = path.with_name(path.name + ".partial")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _stored_version(path: Path, meta: dict[str, str]) -> int:
    """The file's format version, if this code can read it (equal or older)."""
    raw = meta.get("format_version")
    try:
        version = int(raw or "")
    except ValueError:
        raise UserError(f"{path}: checkpoint format {raw!r} is not a version number") from None
    if version > FORMAT_VERSION:
        raise UserError(
            f"{path}: checkpoint format {version} is newer than this stablesync reads"
            f" (up to {FORMAT_VERSION}); update stablesync"
        )
    missing = [n for n in range(version, FORMAT_VERSION) if n not in MIGRATIONS]
    if missing:
        raise UserError(
            f"{path}: checkpoint format {version} is older than this stablesync reads"
            f" (from format {missing[-1] + 1})"
        )
    return version


def _migrate_metadata(meta: dict[str, str], version: int) -> dict[str, str]:
    for n in range(version, FORMAT_VERSION):
        meta = MIGRATIONS[n].metadata(dict(meta))
    return {**meta, "format_version": str(FORMAT_VERSION)}


def _migrate_tensors(tensors: StateDict, version: int) -> StateDict:
    for n in range(version, FORMAT_VERSION):
        tensors = MIGRATIONS[n].tensors(tensors)
    return tensors


def read_metadata(path: str | Path) -> dict[str, str]:
    """The checkpoint's metadata, migrated to the current format."""
    return _read_metadata(Path(path))[0]


def _read_metadata(path: Path) -> tuple[dict[str, str], int]:
    """-> (metadata migrated to the current format, the format version stored in the file)."""
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta: dict[str, str] = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(
            f"{path}: not a readable safetensors checkpoint ({str(exc).splitlines()[0]})"
        ) from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a stablesync checkpoint (no '{FORMAT}' metadata)")
    version = _stored_version(path, meta)
    return _migrate_metadata(meta, version), version


def load_config(path: str | Path) -> Any:
    return _config(Path(path), read_metadata(path))


def _config(path: Path, meta: dict[str, str]) -> Any:
    arch = meta.get("arch", "")
    if arch not in ARCHITECTURES:
        raise UserError(f"{path}: unknown architecture {arch!r}; expected one of {', '.join(ARCHITECTURES)}")
    try:
        raw = json.loads(meta["config"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path}: checkpoint config is missing or not JSON") from None
    return from_dict(ARCHITECTURES[arch][0], raw, where=f"{path}: config")


def load(
    path: str | Path, expect_arch: str | None = None, map_location: str = "cpu"
) -> tuple[nn.Module, Any]:
    """-> (model rebuilt from the stored config with the stored weights, config)."""
    path = Path(path)
    meta, version = _read_metadata(path)
    config = _config(path, meta)
    arch = arch_name(config)
    if expect_arch is not None and arch != expect_arch:
        raise UserError(f"{path}: holds a {arch} checkpoint, expected {expect_arch}")
    model = build(config)
    expected = model.state_dict()
    tensors: StateDict = {}
    try:
        with safe_open(str(path), framework="pt", device=map_location) as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                tensors[key] = f.get_tensor(key)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"{path}: checkpoint is truncated or corrupt ({str(exc).splitlines()[0]})") from None
    tensors = _migrate_tensors(tensors, version)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise UserError(f"{path}: weights do not match the {arch} architecture ({what})")
    for key, ref in expected.items():
        if tensors[key].shape != ref.shape:
            raise UserError(
                f"{path}: weight {key} has shape {tuple(tensors[key].shape)}, expected {tuple(ref.shape)}"
            )
        if tensors[key].is_floating_point():
            tensors[key] = tensors[key].to(ref.dtype)
    model.load_state_dict(tensors, strict=True)
    return model, config


def _run_metadata(path: Path) -> dict[str, str]:
    return {k: v for k, v in read_metadata(path).items() if k != "averaged_from"}


def average(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Writes the uniform average of checkpoints of one run to `out`: weight averaging.

    Averaging the weights of a run's last checkpoints, taken while its learning rate is low,
    gives a model at the centre of the region they explore (Izmailov et al. 2018, "Averaging
    Weights Leads to Wider Optima"). Floating tensors (batch-norm statistics included) are
    averaged in float64; integer ones (batch-norm step counters) are the last checkpoint's.
    The checkpoints must share architecture, config and stage metadata; `out` keeps that
    metadata and lists its sources under "averaged_from".
    """
    if len(paths) < 2:
        raise UserError(f"average: got {len(paths)} checkpoint(s), expected at least two of one run")
    first = Path(paths[0])
    meta0 = _run_metadata(first)
    sums: dict[str, torch.Tensor] = {}
    model: nn.Module | None = None
    config: Any = None
    for raw in paths:
        path = Path(raw)
        meta = _run_metadata(path)
        if meta != meta0:
            diff = sorted(k for k in set(meta) | set(meta0) if meta.get(k) != meta0.get(k))
            raise UserError(f"{path}: its {diff[0]} differs from {first}'s; average checkpoints of one run")
        model, config = load(path)
        for key, value in model.state_dict().items():
            if not value.is_floating_point():
                sums[key] = value.clone()
            elif key in sums:
                sums[key] += value.double()
            else:
                sums[key] = value.double()
    assert model is not None
    state = model.state_dict()
    averaged = {
        k: (v / len(paths)).to(state[k].dtype) if v.is_floating_point() else v for k, v in sums.items()
    }
    model.load_state_dict(averaged, strict=True)
    extra = {k: v for k, v in meta0.items() if k not in _OWN_KEYS}
    extra["averaged_from"] = json.dumps([str(p) for p in paths])
    return save(out, model, config, extra=extra)
