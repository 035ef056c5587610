"""benchmarks/session_memory.py's instruments: glibc's malloc figures read through ctypes, the
onnxruntime options it sets while the engine opens, its bad-input answer and one short run."""

from __future__ import annotations

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest

from stablesync.benchmarks.session_memory import _ort_options, main

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="mallinfo2 is glibc's (2.33 and later)",
)


@glibc
def test_malloc_figures_see_a_large_block_come_and_go() -> None:
    # in a process of its own: in the full suite this process's allocator figures did not move
    # at all for the block (earlier tests' state); the figures must see its 256 MB come and go
    script = """
import ctypes, json
from stablesync.benchmarks.common import malloc_mb
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
before = malloc_mb()
block = libc.malloc(256 * 1024 * 1024)  # above glibc's largest mmap threshold: a mapped chunk
held = malloc_mb()
libc.free(block)
print(json.dumps([before, held, malloc_mb()]))
"""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=root, check=True)
    before, held, after = json.loads(out.stdout)
    assert held["mmapped"] - before["mmapped"] >= 240.0
    assert held["mmapped_blocks"] >= before["mmapped_blocks"] + 1
    assert held["mmapped"] - after["mmapped"] >= 240.0
    assert held["heap_in_use"] > 0.0


def test_onnxruntime_options_are_set_only_while_open() -> None:
    with _ort_options({"enable_mem_pattern": False, "enable_cpu_mem_arena": False}):
        inside = ort.SessionOptions()
    outside = ort.SessionOptions()
    assert (inside.enable_mem_pattern, inside.enable_cpu_mem_arena) == (False, False)
    assert (outside.enable_mem_pattern, outside.enable_cpu_mem_arena) == (True, True)


def test_an_unknown_onnxruntime_option_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--ort-option", "enable_everything=1", "--part", "threads"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--ort-option enable_everything=1" in err and "enable_mem_pattern" in err


@glibc
def test_a_part_is_run_and_its_rss_recorded_after_every_cycle(tmp_path: Path) -> None:
    out = tmp_path / "memory.json"
    assert main(["--part", "threads", "--cycles", "3", "--frames", "2", "--out", str(out)]) == 0
    part = json.loads(out.read_text())["figures"]["parts"]["threads"]
    assert "error" not in part, part
    assert len(part["rss_after_cycle_mb"]) == 3
    assert len(part["os_threads_after_cycle"]) == 3 and min(part["os_threads_after_cycle"]) >= 1
    assert all(rss > 10.0 for rss in part["rss_after_cycle_mb"])
    assert part["growth_per_cycle_mb"] is None  # 3 cycles are too few for a slope
    assert set(part["malloc_mb"]) == {"before", "after_cycle_1", "after_cycle_3"}
