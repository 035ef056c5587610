"""`run`, `demo` and `serve` start by saying what they opened, with one implementation
(realtime/cli/startup.py): the same inputs give `run` and `demo` the same lines; `serve` names its
model and tracker, the page's address and whether it needs the token. Real parts: the shipped
cpu-rt engine, the CLI in process, `serve` as a process on a free port."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stablesync.cli import main as cli_main
from stablesync.media import write_wav


@pytest.fixture
def speech(tmp_path: Path) -> Path:
    noise = 0.2 * np.random.default_rng(0).standard_normal(12_000).astype(np.float32)
    return write_wav(tmp_path / "speech.wav", noise, 16_000)


def _block(err: str) -> dict[str, str]:
    """The start-up block's lines by label: the lines from the first on that read 'label:  text'."""
    lines: dict[str, str] = {}
    for line in err.splitlines():
        found = re.fullmatch(r"([a-z][a-z ]{0,9}):\s+(.+)", line)
        if found is None:
            break
        lines[found[1]] = found[2]
    return lines


def test_demo_says_what_it_opened_as_run_does(
    rt_face_photo: Path, speech: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = {}
    for command in ("run", "demo"):
        out = tmp_path / f"{command}.mp4"
        args = [command, "--face", str(rt_face_photo), "--audio", str(speech), "--fast", "--out", str(out)]
        assert cli_main(args) == 0
        said[command] = _block(capsys.readouterr().err)
    demo = said["demo"]
    assert demo["video in"].startswith(f"photo {rt_face_photo} (") and demo["audio in"] == f"audio {speech}"
    assert demo["model"].startswith("cpu-rt on ") and demo["tracking"].startswith("face tracker: ")
    assert demo["file"].startswith(str(tmp_path / "demo.mp4")) and "demo.partial.mp4" in demo["file"]
    for label in ("video in", "audio in", "model", "tracking"):
        assert said["run"][label] == demo[label], label
    assert said["run"]["file"] == demo["file"].replace("demo.", "run.")


def _serve_block(*args: str) -> tuple[dict[str, str], str]:
    """Starts `serve` on a free port, reads what it says until the page's address, stops it."""
    cmd = [sys.executable, "-m", "stablesync", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        opened = proc.stdout.readline()  # printed after the block, once it listens
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert opened.startswith("stablesync serve: open http://127.0.0.1:"), (opened, err)
    return _block(err), opened.split()[3]


@pytest.mark.parametrize("token", [None, "s3cret-token"])
def test_serve_says_what_it_opened_and_where_the_page_is(token: str | None) -> None:
    block, url = _serve_block("--backend", "ort-cpu", *(["--token", token] if token else []))
    assert block["model"].startswith("cpu-rt on ort-cpu") and block["tracking"].startswith("face tracker: ")
    assert block["sessions"].startswith("a worker process each")
    assert block["page"].startswith(url)
    if token:
        assert url.endswith(f"#token={token}") and "carries the token" in block["access"]
    else:
        assert "#token" not in url and "no token" in block["access"]


def test_serve_passthrough_says_there_is_no_model() -> None:
    block, _ = _serve_block("--backend", "passthrough")
    assert "passthrough" in block["model"] and "tracking" not in block
