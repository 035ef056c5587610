"""The live commands' stderr filter: mediapipe's real start-up lines (absl, TensorFlow Lite),
written by C code to fd 2, are dropped; the program's own lines and errors pass, in order."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import os, sys, numpy as np
from stablesync.noise import StderrFilter
noise = StderrFilter() if sys.argv[1] == "filtered" else None
print("before", file=sys.stderr, flush=True)
from stablesync.face import FaceMeshTracker
with FaceMeshTracker(video=True) as tracker:
    tracker.detect(np.zeros((120, 160, 3), np.uint8))
os.write(2, b"ALSA lib pcm.c:8545:(snd_pcm_recover) underrun occurred\\n")
print("stablesync run: error: x.wav: audio file not found", file=sys.stderr, flush=True)
if noise is not None:
    noise.close()
"""


def _stderr(mode: str) -> str:
    proc = subprocess.run([sys.executable, "-c", CODE, mode], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_third_party_noise_is_dropped_and_our_lines_pass() -> None:
    raw = _stderr("raw")
    assert "ALSA lib" in raw and ("W0000" in raw or "INFO: Created TensorFlow Lite" in raw)
    filtered = _stderr("filtered")
    assert filtered.splitlines() == ["before", "stablesync run: error: x.wav: audio file not found"]
