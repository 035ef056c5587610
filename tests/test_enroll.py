"""stablesync enroll (issue 16): a take is checked, fine-tuned for a few steps, exported as a
profile in XDG_DATA_HOME, validated, resumed after an interruption, and used by `run`."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.typing import NDArray
from safetensors import safe_open

import stablesync
from stablesync.cli import main as cli
from stablesync.enroll.checks import TakeChecks, TakeSummary, reasons
from stablesync.enroll.finetune import REFERENCE_VIEWS


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    return data / "stablesync" / "profiles"


def _summary(**changes: float) -> TakeSummary:
    good = {
        "duration_s": 60.0,
        "frames": 1500,
        "sampled": 120,
        "no_face": 0,
        "two_faces": 0,
        "face_luma": 120.0,
        "speech_dbfs": -20.0,
        "voiced_fraction": 0.7,
    }
    return TakeSummary(**{**good, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"duration_s": 1.2}, "too short"),
        ({"no_face": 60}, "no face"),
        ({"two_faces": 40}, "two faces"),
        ({"face_luma": 20.0}, "too dark"),
        ({"speech_dbfs": -70.0}, "silence"),
        ({"voiced_fraction": 0.02}, "silence"),
    ],
)
def test_take_reasons(changes: dict[str, float], reason: str) -> None:
    assert reasons(_summary(), TakeChecks()) == []
    found = reasons(_summary(**changes), TakeChecks())
    assert len(found) == 1 and found[0].startswith(reason)


def _write_take(path: Path, frames: list[NDArray[np.uint8]], audio: NDArray[np.float32]) -> Path:
    from stablesync.media import Mp4Writer

    h, w = frames[0].shape[:2]
    writer = Mp4Writer(path, 25.0, (w, h), audio_rate_hz=16_000)
    for frame in frames:
        writer.write(frame)
    writer.close(audio)
    return path


def _clip(tiny_corpus: Path) -> tuple[list[NDArray[np.uint8]], NDArray[np.float32]]:
    from stablesync.media import iter_video_frames, read_audio

    clip = tiny_corpus / "clip00000.mp4"
    return [f for f, _ in iter_video_frames(clip)], read_audio(tiny_corpus / "clip00000.wav")


def test_bad_takes_are_one_line_exit_2(
    tiny_corpus: Path, tmp_path: Path, xdg: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames, audio = _clip(tiny_corpus)
    takes = {
        "too short": _write_take(tmp_path / "short.mp4", frames[:25], audio[:16_000]),
        "no face": _write_take(tmp_path / "blank.mp4", [np.full_like(f, 128) for f in frames], audio),
        "two faces": _write_take(tmp_path / "two.mp4", [np.hstack([f, f[:, ::-1]]) for f in frames], audio),
        "too dark": _write_take(tmp_path / "dark.mp4", [(f // 10).astype(np.uint8) for f in frames], audio),
        "silence": _write_take(tmp_path / "quiet.mp4", frames, np.zeros_like(audio)),
    }
    for reason, take in takes.items():
        assert cli(["enroll", "me", "--video", str(take), "--steps", "1"]) == 2, reason
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unusable take" in err[0] and reason in err[0], (reason, err)
    assert not (xdg / "me").exists()  # a refused take leaves no profile behind


@pytest.mark.timeout(900)  # ~1 min on an idle 2-core machine; this one is often shared 5 ways
def test_enroll_interrupted_resumed_exported_and_used_by_run(
    tiny_corpus: Path, tmp_path: Path, xdg: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stablesync.media import read_audio, write_wav
    from stablesync.train.generator_stage import GeneratorTask

    video = tiny_corpus / "clip00000.mp4"
    # the clip's speech with a pause (room noise at -60 dBFS) from 0.5 to 1.3 s: G_S's closed mouth
    sound = read_audio(video, 16_000)
    sound[8_000:20_800] = 1e-3 * np.random.default_rng(0).standard_normal(12_800).astype(np.float32)
    audio = write_wav(tmp_path / "with_pause.wav", sound, 16_000)
    enroll = [
        "enroll",
        "me",
        "--video",
        str(video),
        "--audio",
        str(audio),
        "--steps",
        "2",
        "--batch-size",
        "2",
    ]
    enroll += ["--keep-work", "--validate-s", "0.4"]
    original = GeneratorTask.train_step

    def interrupted(self: GeneratorTask, rng: np.random.Generator, step: int) -> dict[str, float]:
        if step == 1:  # after step 1's checkpoint: Ctrl-C
            raise KeyboardInterrupt
        return original(self, rng, step)

    monkeypatch.setattr(GeneratorTask, "train_step", interrupted)
    assert cli(enroll) == 130
    profile = xdg / "me"
    state = profile / "work" / "train" / "state.safetensors"
    assert state.is_file() and not (profile / "manifest.json").exists()
    assert cli(["run", "--profile", "me", "--video", str(video), "--fast"]) == 2  # unfinished
    assert cli(enroll) == 2  # neither --resume nor --overwrite
    monkeypatch.setattr(GeneratorTask, "train_step", original)
    assert cli([*enroll, "--resume"]) == 0
    log = (profile / "work" / "train" / "log.csv").read_text().splitlines()
    assert {row.split(",")[0] for row in log[1:]} == {"1", "2"}  # resumed at 1, went on to 2
    assert stat.S_IMODE(profile.stat().st_mode) == 0o700
    for name in ("manifest.json", "reference.onnx", "frame.onnx", "report.json", "profile.json"):
        assert (profile / name).is_file(), name
    assert (profile / "contact_sheet.png").is_file() and (profile / "preview.mp4").is_file()
    # the profile's sessions average the views its fine-tune drew references from: enroll's 1
    assert json.loads((profile / "manifest.json").read_text())["reference_views"] == REFERENCE_VIEWS == 1
    report = json.loads((profile / "report.json").read_text())
    for weights in ("personal", "shipped"):
        assert report[weights]["frames"] > 0 and np.isfinite(report[weights]["mouth_psnr_db"])
    info = json.loads((profile / "profile.json").read_text())
    assert info["steps"] == 2 and info["silent_steps"] == 1 and info["rest_frames"] > 0, info
    assert info["rest_kind"] == "pause frames" and info["reference_views"] == REFERENCE_VIEWS
    # G_S learnt the closed mouth from the take's pauses, and the profile carries that G_S
    silent_log = (profile / "work" / "train_silent" / "log.csv").read_text().splitlines()
    assert {row.split(",")[0] for row in silent_log[1:]} == {"1"}
    personal = safe_open(str(profile / "work" / "train" / "last.safetensors"), "pt")
    g_s = safe_open(str(profile / "work" / "train_silent" / "last.safetensors"), "pt")
    shipped_path = Path(stablesync.__file__).parent / "assets" / "weights" / "cpu-rt" / "lipsync.safetensors"
    shipped = safe_open(str(shipped_path), "pt")
    names = [k for k in personal.keys() if k.startswith("silent.")]  # noqa: SIM118 (a safetensors handle)
    assert names and all(torch.equal(personal.get_tensor(k), g_s.get_tensor(k)) for k in names)
    assert any(not torch.equal(personal.get_tensor(k).float(), shipped.get_tensor(k).float()) for k in names)

    out = tmp_path / "out.mp4"
    face = Path(stablesync.__file__).parent / "assets" / "demo" / "face.png"
    run = ["run", "--profile", "me", "--face", str(face), "--audio", str(video)]
    assert cli([*run, "--fast", "--seconds", "1", "--quiet", "--out", str(out)]) == 0
    assert out.is_file()
    from stablesync.realtime.cli.serve import build_parser, open_pipelines

    serve = build_parser("stablesync serve").parse_args(["--profile", "me", "--backend", "ort-cpu"])
    assert serve.weights == profile
    pipelines = open_pipelines(serve)  # serve's shared engine: the profile's graphs
    assert pipelines.backend == "ort-cpu"
    asyncio.run(pipelines.aclose())
    assert cli(["profiles", "list"]) == 0
    assert cli(["profiles", "remove", "me"]) == 0 and not profile.exists()
