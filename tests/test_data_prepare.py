"""`stablesync data prepare`: the layout, bad inputs skipped with reasons, resume, 25 fps, lrs2."""

from __future__ import annotations

import json
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from stablesync.audio import log_mel
from stablesync.cli import main as cli_main
from stablesync.data.prepare import PrepareConfig, prepare_dataset
from stablesync.media import Mp4Writer, iter_video_frames, read_audio


def test_prepared_layout(tiny_prepared: Path, tiny_corpus: Path) -> None:
    info = json.loads((tiny_prepared / "dataset.json").read_text())
    assert info["layout_version"] == 1 and info["size"] == 96 and info["fps"] == 25.0
    assert info["sample_rate_hz"] == 16000 and info["clips"] == 3 and info["mel"]["n_mels"] == 80
    manifest = json.loads((tiny_corpus / "manifest.json").read_text())
    for clip in manifest["clips"]:
        listed = (tiny_prepared / f"{clip['split']}.txt").read_text().split()
        assert clip["name"] in listed
        d = tiny_prepared / "clips" / clip["name"]
        meta = json.loads((d / "meta.json").read_text())
        frames = np.load(d / "frames.npy")
        marks = np.load(d / "landmarks.npy")
        mel = np.load(d / "mel.npy")
        assert frames.shape == (50, 96, 96, 3) and frames.dtype == np.uint8
        assert marks.shape == (50, 468, 2) and marks.dtype == np.float32
        # the crop puts the nose tip at (0.5 S, 0.62 S)
        assert np.abs(marks[:, 1].mean(0) - [48, 0.62 * 96]).max() < 3
        with wave.open(str(d / "audio.wav")) as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 16000, 32000)
        np.testing.assert_allclose(mel, log_mel(read_audio(d / "audio.wav")), atol=1e-4)
        assert mel.dtype == np.float32 and mel.shape == (80, 161)
        assert meta["split"] == clip["split"] and meta["n_frames"] == 50 and meta["size"] == 96
        assert meta["voice"] == clip["voice"] and meta["face"] == clip["face"]
        assert len(meta["mouth_open"]) == 50 and len(meta["visemes"]) == 50


@pytest.mark.slow
def test_bad_inputs_skipped_and_resume_loses_nothing(tiny_corpus: Path, tmp_path: Path) -> None:
    src = tmp_path / "videos"
    src.mkdir()
    for name in ("clip00000", "clip00001", "clip00002"):
        for ext in (".mp4", ".wav", ".json"):
            shutil.copy(tiny_corpus / f"{name}{ext}", src / f"{name}{ext}")
    data = (tiny_corpus / "clip00000.mp4").read_bytes()
    (src / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (src / "notes.mp4").write_text("this is a text file, not a video\n")
    dst = tmp_path / "prepared"
    args = ["data", "prepare", str(src), str(dst), "--workers", "1", "--quiet"]
    assert cli_main([*args[:-3], "--workers", "2", "--quiet"]) == 1  # parallel; something was skipped
    report = json.loads((dst / "report.json").read_text())
    assert report["prepared"] == ["clip00000", "clip00001", "clip00002"]
    skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"truncated.mp4", "notes.mp4"}
    assert all(reason.strip() and "\n" not in reason for reason in skipped.values())
    lists = {s: (dst / f"{s}.txt").read_text().split() for s in ("train", "val", "test")}
    files = sorted(p for p in dst.rglob("*") if p.is_file() and p.parent.name.startswith("clip"))
    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert len(files) == 15 and not list((dst / "clips").glob(".*"))
    # second run: nothing redone, nothing lost, same report
    assert cli_main(args) == 1
    assert json.loads((dst / "report.json").read_text())["prepared"] == report["prepared"]
    assert {p: p.stat().st_mtime_ns for p in files} == stamps
    assert {s: (dst / f"{s}.txt").read_text().split() for s in ("train", "val", "test")} == lists
    # only the good clips: exit status 0
    for bad in ("truncated.mp4", "notes.mp4"):
        (src / bad).unlink()
    assert cli_main(args) == 0


def test_resamples_to_25_fps_lrs2_layout(tiny_corpus: Path, tmp_path: Path) -> None:
    src = tmp_path / "lrs2"
    spk = src / "main" / "6330311066473698535"
    spk.mkdir(parents=True)
    frames = [f for f, _ in iter_video_frames(tiny_corpus / "clip00000.mp4")]
    audio = read_audio(tiny_corpus / "clip00000.wav")
    # the same 2 s at 30 fps: frame k of the 30 fps file shows the source frame at k/30 s
    with Mp4Writer(spk / "00001.mp4", 30.0, (256, 256), 16000) as writer:
        for k in range(60):
            writer.write(frames[min(int(k / 30 * 25 + 1e-6), 49)])
        writer.close(audio)
    (src / "test.txt").write_text("6330311066473698535/00001 NF\n")
    dst = tmp_path / "out"
    report = prepare_dataset(PrepareConfig(src, dst, layout="lrs2", size=64, progress=False))
    assert report.prepared == ["6330311066473698535_00001"] and not report.skipped
    meta = json.loads((dst / "clips" / "6330311066473698535_00001" / "meta.json").read_text())
    assert meta["split"] == "test" and meta["source_fps"] == 30.0
    assert meta["n_frames"] == 50 and meta["fps"] == 25.0 and "mouth_open" not in meta
    assert np.load(dst / "clips" / "6330311066473698535_00001" / "frames.npy").shape == (50, 64, 64, 3)
    assert (dst / "test.txt").read_text().split() == ["6330311066473698535_00001"]


def test_cli_user_errors(tmp_path: Path, capsys: object) -> None:
    assert cli_main(["data", "prepare", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    assert cli_main(["data", "synth", "--out", str(tmp_path / "c"), "--clips", "0"]) == 2


def test_faceless_and_silent_videos_are_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sound = (0.1 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220)).astype(np.float32)
    with Mp4Writer(src / "wall.mp4", 25.0, (64, 64), 16000) as writer:  # no face in any frame
        for k in range(25):
            writer.write(np.full((64, 64, 3), 100 + k, np.uint8))
        writer.close(sound)
    with Mp4Writer(src / "mute.mp4", 25.0, (64, 64)) as writer:  # no audio stream
        for _ in range(25):
            writer.write(np.full((64, 64, 3), 90, np.uint8))
        writer.close()
    report = prepare_dataset(PrepareConfig(src, tmp_path / "dst", progress=False))
    reasons = {Path(s["path"]).name: s["reason"] for s in report.skipped}
    assert report.prepared == []
    assert "no face" in reasons["wall.mp4"] and "no audio" in reasons["mute.mp4"]
    assert json.loads((tmp_path / "dst" / "report.json").read_text())["skipped"] == report.skipped
