"""DistributedDataParallel: two gloo processes on CPU under torchrun train a few steps in lockstep."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open

from tests.test_train import generator_toml, syncnet_toml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(stage: str, cfg: Path) -> dict[str, object]:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "stablesync", "train", stage, "--config", str(cfg),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return summary


def _rank_states(out: Path) -> list[dict[str, object]]:
    with safe_open(str(out / "state.safetensors"), framework="pt") as f:
        ranks: list[dict[str, object]] = json.loads(f.metadata()["info"])["rng"]
    return ranks


@pytest.mark.slow
def test_two_ranks_agree(random_prepared: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "sync.toml"
    cfg.write_text(syncnet_toml(random_prepared, tmp_path / "out", 4))
    summary = _torchrun("syncnet", cfg)
    assert summary["step"] == 4 and summary["rank"] == 0
    ranks = _rank_states(tmp_path / "out")
    assert len(ranks) == 2
    # both replicas hold bit-identical weights (batch-norm statistics included), though each
    # drew its own batches
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["numpy"] != ranks[1]["numpy"]
    rows = (tmp_path / "out" / "log.csv").read_text().splitlines()
    assert any(r.startswith("4,val,accuracy,") for r in rows)

    # the GAN stage: generator and discriminator both under DDP
    syncnet = tmp_path / "out" / "last.safetensors"
    cfg = tmp_path / "silent.toml"
    cfg.write_text(generator_toml("silent", random_prepared, tmp_path / "gs", syncnet, "", 2))
    assert _torchrun("silent", cfg)["step"] == 2
    ranks = _rank_states(tmp_path / "gs")
    assert len(ranks) == 2 and ranks[0]["digest"] == ranks[1]["digest"]
