"""What a user meets with bad inputs: files are never lost (an existing --out needs --overwrite,
an input is never an output, every device and input is checked before anything is written) and
every bad input is one line naming it, exit 2, before anything runs. Real parts throughout:
the CLI in process, the shipped cpu-rt engine, a real microphone open that fails, PyAV files."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from stablesync.cli import main as cli_main
from stablesync.errors import UserError
from stablesync.export import load_engine
from stablesync.realtime.local.runner import RunConfig, Runner
from stablesync.realtime.local.sinks import FileSink
from stablesync.realtime.local.sources import ImageSource, MicSource, load_image
from stablesync.realtime.pipeline.loading import default_weights_dir
from stablesync.realtime.pipeline.session import SessionConfig


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    path = tmp_path / "speech.wav"
    samples = (0.2 * np.random.default_rng(0).standard_normal(16_000) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture
def existing(tmp_path: Path) -> Path:
    """An mp4 the user already has (its bytes are what must survive)."""
    path = tmp_path / "call.mp4"
    path.write_bytes(b"the user's earlier recording" * 100)
    return path


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """`stablesync ARGS` in process: (exit code, the lines it wrote to stderr as stablesync's own)."""
    code = cli_main(args)
    err = capsys.readouterr().err
    return code, "\n".join(line for line in err.splitlines() if line.startswith("stablesync "))


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 0 and err.startswith("stablesync "), err
    assert ": error: " in err and ("expected" in err or "pass --" in err), err
    for fragment in fragments:
        assert fragment in err, err


# --- files are never lost --------------------------------------------------------------------


def test_an_existing_out_needs_overwrite(
    rt_face_photo: Path, speech: Path, existing: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = existing.read_bytes()
    args = ["run", "--face", str(rt_face_photo), "--audio", str(speech), "--fast", "--out", str(existing)]
    code, err = run_cli([*args, "--quiet"], capsys)
    assert_one_line_error(code, err, str(existing), "--overwrite")
    assert existing.read_bytes() == before


@pytest.mark.parametrize(
    ("input_flag", "output_flag"),
    [("--video", "--out"), ("--audio", "--stats-json"), ("--face", "--stats-json")],
)
def test_an_input_is_never_an_output_even_with_overwrite(
    input_flag: str,
    output_flag: str,
    rt_face_photo: Path,
    speech: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"an input video")
    face = tmp_path / "face.png"
    face.write_bytes(rt_face_photo.read_bytes())
    target = {"--face": face, "--audio": speech, "--video": clip}[input_flag]
    (tmp_path / "sub").mkdir()
    same = tmp_path / "sub" / ".." / target.name  # another spelling of the same file
    before = target.read_bytes()
    video = ["--video", str(clip)] if input_flag == "--video" else ["--face", str(face)]
    outputs = {"--out": str(tmp_path / "o.mp4"), output_flag: str(same)}
    args = ["run", *video, "--audio", str(speech), "--fast", "--overwrite"]
    code, err = run_cli([*args, *(x for kv in outputs.items() for x in kv)], capsys)
    assert_one_line_error(code, err, f"{output_flag} {same}: is also the {input_flag} input")
    assert target.read_bytes() == before


async def test_a_microphone_that_cannot_open_leaves_an_existing_file_untouched(
    rt_face_photo: Path, existing: Path
) -> None:
    """The run is asked to replace the file (--overwrite), but its microphone cannot open: the
    run must stop before anything is written, with the microphone's error."""
    weights = default_weights_dir()
    if not (weights / "manifest.json").is_file():
        pytest.skip("no shipped cpu-rt weights")
    engine = load_engine(weights, "ort-cpu", intra_op_threads=1)
    before = existing.read_bytes()
    video = ImageSource(load_image(rt_face_photo), 25.0, duration_s=2.0)
    mic = MicSource(device=999, sample_rate_hz=16_000)  # no such device on any machine
    cfg = RunConfig(session=SessionConfig(budget_ms=250.0), out_path=existing, live_status=False)
    with pytest.raises(UserError, match="microphone 999: cannot open it"):
        await Runner(engine, video, mic, cfg, paced=True).run()
    assert existing.read_bytes() == before
    assert sorted(p.name for p in existing.parent.iterdir()) == [existing.name]  # no partial file


async def test_the_file_is_written_as_name_partial_mp4_until_finalised(tmp_path: Path) -> None:
    out = tmp_path / "call.mp4"
    sink = FileSink(out, start_ns=0)
    await sink.write_video(np.full((64, 64, 3), 128, np.uint8), 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.partial.mp4"]
    assert await sink.close() == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.mp4"]


# --- every bad input is one line, exit 2 ----------------------------------------------------


@pytest.mark.parametrize("size", [(1, 1), (1, 2), (2, 1)])
def test_a_tiny_photo_is_a_one_line_error(
    size: tuple[int, int], speech: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "tiny.png"
    cv2.imwrite(str(photo), np.full((*size, 3), 200, np.uint8))
    out = tmp_path / "o.mp4"
    code, err = run_cli(
        ["run", "--face", str(photo), "--audio", str(speech), "--fast", "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, str(photo), f"{size[1]}x{size[0]}")
    assert not out.exists()


def test_a_photo_without_a_face_is_a_one_line_error(
    speech: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = tmp_path / "wall.png"
    cv2.imwrite(str(photo), np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    out = tmp_path / "o.mp4"
    code, err = run_cli(
        ["run", "--face", str(photo), "--audio", str(speech), "--fast", "--out", str(out)], capsys
    )
    assert_one_line_error(code, err, str(photo), "no face")
    assert not out.exists()


def test_an_unwritable_out_is_reported_before_the_run(
    rt_face_photo: Path, speech: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = Path("/proc/stablesync-test.mp4")  # a folder nothing can be created in, even by root
    args = ["run", "--face", str(rt_face_photo), "--audio", str(speech), "--fast", "--out", str(out)]
    code, err = run_cli(args, capsys)
    assert_one_line_error(code, err, str(out), "cannot write in /proc")


def test_stats_json_naming_a_folder_is_reported_before_the_run(
    rt_face_photo: Path, speech: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "stats"
    folder.mkdir()
    out = tmp_path / "o.mp4"
    args = ["run", "--face", str(rt_face_photo), "--audio", str(speech), "--fast", "--out", str(out)]
    code, err = run_cli([*args, "--stats-json", str(folder)], capsys)
    assert_one_line_error(code, err, str(folder), "is a folder")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["speech.wav", "stats"]  # no mp4, no .partial


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--budget-ms", "nan"), ("--budget-ms", "inf"), ("--fps", "0"), ("--seconds", "0"), ("--fps", "nan")],
)
def test_bad_numbers_are_one_line_errors(
    flag: str,
    value: str,
    rt_face_photo: Path,
    speech: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "o.mp4"
    args = ["run", "--face", str(rt_face_photo), "--audio", str(speech), "--fast", "--out", str(out)]
    code, err = run_cli([*args, flag, value], capsys)
    assert_one_line_error(code, err, f"{flag} {value}")
    assert not out.exists()


def test_webrtc_client_bad_clip_and_no_server_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stablesync.realtime.webrtc.client import main as client_main

    missing = tmp_path / "nope.mp4"
    assert client_main(["http://127.0.0.1:9/", "--clip", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--clip {missing}: not found; expected" in err, err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video")
    assert client_main(["http://127.0.0.1:9/", "--clip", str(junk)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--clip {junk}: " in err and "expected a prepared clip" in err, err
    assert client_main([unused_local_url(), "--seconds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no stablesync server answered" in err, err


def unused_local_url() -> str:
    """A local address with nothing listening: a port taken from the OS and closed again."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def test_run_stopped_by_sigterm_exits_zero_like_serve_with_a_complete_file(
    rt_face_photo: Path, speech: Path, tmp_path: Path
) -> None:
    out = tmp_path / "call.mp4"
    long_speech = tmp_path / "long.wav"
    with wave.open(str(speech)) as src, wave.open(str(long_speech), "wb") as dst:
        dst.setparams(src.getparams())
        dst.writeframes(src.readframes(src.getnframes()) * 60)  # a minute: stopped long before its end
    cmd = [sys.executable, "-m", "stablesync", "run", "--face", str(rt_face_photo)]
    cmd += ["--audio", str(long_speech), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    try:
        partial = tmp_path / "call.partial.mp4"
        while not partial.exists() and proc.poll() is None:  # frames are being written
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped on request" in err
    assert out.is_file() and not partial.exists()
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames > 0


def test_run_says_what_it_opened_before_it_starts(rt_face_photo: Path, speech: Path, tmp_path: Path) -> None:
    out = tmp_path / "said.mp4"
    cmd = [sys.executable, "-m", "stablesync", "run", "--face", str(rt_face_photo), "--audio", str(speech)]
    cmd += ["--fast", "--seconds", "1", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    head = proc.stderr.splitlines()[:6]
    assert head[0].startswith("video in:  photo") and str(rt_face_photo) in head[0], head
    assert head[1].startswith("audio in:  audio") and any(h.startswith("model:     cpu-rt on ") for h in head)
    assert any(h.startswith("file:      ") and "said.partial.mp4" in h for h in head), head
