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

from tests.test_train import syncnet_toml


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_ranks_agree(random_prepared: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "sync.toml"
    cfg.write_text(syncnet_toml(random_prepared, tmp_path / "out", 4))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
        "--master_port", str(_free_port()), "-m", "stablesync", "train", "syncnet", "--config", str(cfg),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["step"] == 4 and summary["rank"] == 0
    with safe_open(str(tmp_path / "out" / "state.safetensors"), framework="pt") as f:
        info = json.loads(f.metadata()["info"])
    ranks = info["rng"]
    assert len(ranks) == 2
    # both replicas hold bit-identical weights, though each drew its own batches
    assert ranks[0]["digest"] == ranks[1]["digest"]
    assert ranks[0]["numpy"] != ranks[1]["numpy"]
    rows = (tmp_path / "out" / "log.csv").read_text().splitlines()
    assert any(r.startswith("4,val,accuracy,") for r in rows)
