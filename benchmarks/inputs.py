"""Inputs shared by the pipeline benchmarks: the face, the speech and the weights to run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


def demo_face_and_speech() -> tuple[Path, NDArray[np.float32] | None]:
    """The bundled demo face and speech; the grace_hopper sample photo and None when absent."""
    from stablesync.bundled import DEMO_DIR

    if (DEMO_DIR / "face.png").is_file() and (DEMO_DIR / "speech.wav").is_file():
        from stablesync.media import read_audio

        return DEMO_DIR / "face.png", read_audio(DEMO_DIR / "speech.wav")
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg", None


def speech_like(seconds: float, rate_hz: int = 16_000) -> NDArray[np.float32]:
    """Noise modulated at syllable rate (~4 Hz) with pauses: loud and silent windows alternate."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate_hz)) / rate_hz
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0, None) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    return (0.3 * envelope * rng.standard_normal(t.size)).astype(np.float32)


def bench_weights(given: Path | None, scratch: Path) -> tuple[Path, str]:
    """(export directory, kind): `given`, else the bundled trained cpu-rt export, else a random-init
    cpu-rt export made in `scratch` (same graphs, same speed; the kind is recorded in the JSON)."""
    from stablesync.realtime.pipeline.loading import default_weights_dir

    if given is not None:
        return given, "given"
    if (default_weights_dir() / "manifest.json").is_file():
        return default_weights_dir(), "bundled"
    out = scratch / "cpu-rt"
    cmd = [
        sys.executable,
        "-m",
        "stablesync",
        "export",
        "--preset",
        "cpu-rt",
        "--random-init",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True)
    return out, "random-init"
