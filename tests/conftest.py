"""Shared fixtures. Each engineer's fixtures sit in their own clearly marked block."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# A test that needs one of these session fixtures (a PyTorch export, a synthesised corpus, its
# preparation: a minute or more each on 2 cores) is slow, marked or not: `make test-fast`
# (pytest -m "not slow") leaves it out.
SLOW_FIXTURES = frozenset({"cpu_rt_export", "tiny_corpus", "tiny_prepared"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


# --- export (issue 5) ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def cpu_rt_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init cpu-rt export directory (manifest.json, reference.onnx, frame.onnx, checkpoint),
    verified against PyTorch; open it with `stablesync.export.load_engine(path, "ort-cpu")`. Read-only: copy
    it before changing anything in it."""
    import torch

    from stablesync.export.exporter import ExportOptions, export_model
    from stablesync.models import create

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("export") / "cpu-rt"
    export_model(create("cpu-rt"), out, ExportOptions(), preset="cpu-rt", log=lambda _: None)
    return out


# --- end export ----------------------------------------------------------------------------


# --- training and evaluation (issue 4) -----------------------------------------------------


@pytest.fixture(scope="session")
def random_prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset in the prepared layout (32 px crops, 8 clips of 40 frames at 25 fps) with
    random content whose mouth brightness follows the audio's loudness: enough to run the
    training and evaluation loops for a few steps. Read-only."""
    import json
    import wave

    import numpy as np

    from stablesync.audio import MelConfig, log_mel

    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    size, fps, n_frames, rate = 32, 25.0, 40, 16_000
    splits = {"train": [f"c{i}" for i in range(4)], "val": ["c4", "c5"], "test": ["c6", "c7"]}
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("\n".join(ids) + "\n")
        for clip_id in ids:
            d = root / "clips" / clip_id
            d.mkdir(parents=True)
            n_samples = int(n_frames / fps * rate)
            envelope = np.repeat(rng.random(n_frames) > 0.5, n_samples // n_frames).astype(np.float32)
            audio = (0.3 * envelope * rng.standard_normal(n_samples)).astype(np.float32)
            frames = np.tile(rng.integers(60, 200, (1, size, size, 3), dtype=np.uint8), (n_frames, 1, 1, 1))
            mouth = slice(int(0.66 * size), int(0.8 * size)), slice(int(0.35 * size), int(0.65 * size))
            frames[:, mouth[0], mouth[1], :] = (20 + 200 * envelope[:: n_samples // n_frames])[
                :, None, None, None
            ]
            np.save(d / "frames.npy", frames)
            np.save(d / "mel.npy", log_mel(audio))
            np.save(d / "landmarks.npy", rng.random((n_frames, 468, 2), dtype=np.float32) * size)
            with wave.open(str(d / "audio.wav"), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes((audio * 32767).astype("<i2").tobytes())
            meta = {
                "fps": fps,
                "n_frames": n_frames,
                "sample_rate_hz": rate,
                "size": size,
                "source": "random",
                "split": split,
                "mouth_open": envelope[:: n_samples // n_frames].tolist(),
            }
            (d / "meta.json").write_text(json.dumps(meta))
    info = {
        "layout_version": 1,
        "size": size,
        "fps": fps,
        "sample_rate_hz": rate,
        "mel": MelConfig().__dict__,
        "clips": 8,
    }
    (root / "dataset.json").write_text(json.dumps(info))
    (root / "report.json").write_text(
        json.dumps({"prepared": [c for ids in splits.values() for c in ids], "skipped": []})
    )
    return root


# --- end training and evaluation -----------------------------------------------------------


# --- data: synthetic corpus and prepared layout (issue 3) ----------------------------------


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic corpus made by `stablesync data synth` once per session: 3 clips of 2 s at
    256x256, seed 0, one clip per split (clip00000 train, clip00001 val, clip00002 test).
    Holds clipNNNNN.mp4 (H.264 25 fps + AAC), .wav (16 kHz mono), .json (fps, sample_rate_hz,
    voice, face, mouth_open, visemes, phonemes, ...), .npz (ground-truth landmarks (T, 468, 2)),
    manifest.json and synth.json. Read-only: copy it before changing anything in it."""
    from stablesync.data.synth import SynthConfig, synthesise_corpus

    out = tmp_path_factory.mktemp("data") / "tiny_corpus"
    synthesise_corpus(SynthConfig(out, clips=3, seconds=2.0, seed=0, workers=1, progress=False))
    return out


@pytest.fixture(scope="session")
def tiny_prepared(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`tiny_corpus` after `stablesync data prepare` (--size 96): the prepared layout of the team
    brief (dataset.json, train/val/test.txt with one clip each, clips/<id>/frames.npy (50, 96, 96, 3),
    mel.npy, audio.wav, landmarks.npy, meta.json with mouth_open/visemes/voice/face), report.json.
    Read-only."""
    from stablesync.data.prepare import PrepareConfig, prepare_dataset

    out = tmp_path_factory.mktemp("data") / "tiny_prepared"
    report = prepare_dataset(PrepareConfig(tiny_corpus, out, size=96, workers=1, progress=False))
    assert not report.skipped, report.skipped
    return out


# --- end data ------------------------------------------------------------------------------


# --- real-time filter (issue 6) ------------------------------------------------------------


@pytest.fixture(scope="session")
def rt_face_photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real face photo (matplotlib's Grace Hopper sample, 256 px wide) as PNG. Read-only."""
    import cv2
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = cv2.imread(str(src))
    h, w = image.shape[:2]
    image = cv2.resize(image, (256, round(h * 256 / w) // 2 * 2))
    out = tmp_path_factory.mktemp("rt") / "face.png"
    cv2.imwrite(str(out), image)
    return out


@pytest.fixture
def pulse_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private PulseAudio server with a null sink `testsink` (a real sound server without sound
    hardware); the environment points PulseAudio clients and sounddevice's ALSA pulse device at it.
    Yields the sink name."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    if shutil.which("pulseaudio") is None:
        pytest.skip("pulseaudio is not installed (make sysdeps-test)")
    run = tmp_path / "pulse-run"
    run.mkdir()
    config = tmp_path / "pa.pa"
    config.write_text(
        "load-module module-native-protocol-unix\nload-module module-null-sink sink_name=testsink\n"
    )
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PULSE_SERVER", f"unix:{run}/pulse/native")
    monkeypatch.delenv("PULSE_SINK", raising=False)
    monkeypatch.delenv("PULSE_SOURCE", raising=False)
    subprocess.run(
        ["pulseaudio", "-n", "-F", str(config), "--exit-idle-time=-1", "--daemonize=yes", "--use-pid-file"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    deadline = time.monotonic() + 10
    while subprocess.run(["pactl", "info"], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "pulseaudio did not start"
        time.sleep(0.1)
    pid = int((run / "pulse" / "pid").read_text().split()[0])
    _refresh_portaudio()  # PortAudio lists devices once: an earlier test may have started it
    try:
        yield "testsink"
    finally:
        os.kill(pid, signal.SIGTERM)
        _refresh_portaudio()


def _refresh_portaudio() -> None:
    """Re-reads the device list (sounddevice's documented way: terminate, then initialise)."""
    import sounddevice

    sounddevice._terminate()
    sounddevice._initialize()


# --- end real-time filter ------------------------------------------------------------------
