"""benchmarks/serve_churn.py: sessions one after another through the real server (passthrough,
real aiortc peers in a child process), a row of figures after each, and every closed session's
peer connection gone though Python's automatic collector is off (the server's own collection
after each close frees it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_each_closed_session_is_freed_and_recorded(tmp_path: Path) -> None:
    out = tmp_path / "churn.json"
    cmd = [sys.executable, "-m", "stablesync.benchmarks.serve_churn", "--backend", "passthrough"]
    cmd += ["--sessions", "2", "--seconds", "1.5", "--no-auto-gc", "--out", str(out)]
    root = Path(__file__).resolve().parent.parent
    subprocess.run(cmd, cwd=root, check=True, capture_output=True, timeout=180)
    figures = json.loads(out.read_text())["figures"]
    rows = figures["per_session"]
    assert [row["session"] for row in rows] == [1, 2]
    assert all(row["peer"] == "ok" and row["closed"] for row in rows), rows
    assert [row["peer_connection_alive"] for row in rows] == [False, False]
    assert figures["automatic_gc"] is False
    assert all(row["rss_mb"] > 10.0 and row["os_threads"] >= 1 for row in rows)
