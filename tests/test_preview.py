"""`--preview` and `--mirror` against a real X server (Xvfb, its screen read back from the
framebuffer file it keeps with -fbdir) and real keys (xdotool, through XTEST): the window
shows the output, mirrored only with --mirror and never in the file; showing never waits; q
stops the run as Ctrl-C does; without a display, one line says so and the run goes on."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from stablesync.cli import main as cli_main
from stablesync.media import write_wav
from stablesync.realtime.local.sinks.preview import PreviewWindow, no_display_reason

TITLE = "stablesync preview"


@dataclass
class Xvfb:
    display: str
    fbdir: Path

    def screen(self) -> NDArray[np.uint8]:
        """The screen as RGB, from the XWD file Xvfb keeps in `fbdir` (24-bit depth, 32 bpp)."""
        data = (self.fbdir / "Xvfb_screen0").read_bytes()
        header = np.frombuffer(data[:100], dtype=">u4")
        size, width, height = int(header[0]), int(header[4]), int(header[5])
        bytes_per_line, ncolors = int(header[12]), int(header[19])
        lsb_first = int(header[7]) == 0
        start = size + 12 * ncolors
        pixels = np.frombuffer(data[start : start + bytes_per_line * height], dtype=np.uint8)
        pixels = pixels.reshape(height, bytes_per_line)[:, : width * 4].reshape(height, width, 4)
        return pixels[:, :, 2::-1] if lsb_first else pixels[:, :, 1:]


@pytest.fixture
def xvfb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Xvfb]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (make sysdeps-test installs xvfb)")
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    read, write = os.pipe()
    cmd = ["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-fbdir", str(fbdir)]
    proc = subprocess.Popen([*cmd, "-nolisten", "tcp"], pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as ready:
            number = ready.readline().strip()  # written once the server accepts clients
        assert number.isdigit(), "Xvfb did not start"
        monkeypatch.setenv("DISPLAY", f":{number}")
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield Xvfb(f":{number}", fbdir)
    finally:
        proc.terminate()
        proc.wait(10)


def _xdotool(*args: str) -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (make sysdeps-test installs it)")
    subprocess.run(["xdotool", *args], check=True, timeout=30, capture_output=True)


def _wait_for(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert check(), "timed out"


async def _until(
    check: Callable[[], bool], stream: tuple[PreviewWindow, NDArray[np.uint8]] | None = None
) -> None:
    """As `_wait_for`, letting the event loop run (it sends the frames, reads the window's
    events); with `stream`, showing the frame every 40 ms meanwhile, as a run does."""
    deadline = time.monotonic() + 20.0
    while not check() and time.monotonic() < deadline:
        if stream is not None:
            stream[0].show(stream[1])
        await asyncio.sleep(0.04)
    assert check(), "timed out"


async def _until_s(check: Callable[[], bool], timeout_s: float) -> bool:
    """Lets the event loop run until `check()` or `timeout_s`; -> check()."""
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        await asyncio.sleep(0.04)
    return check()


def _marked(width: int = 320, height: int = 240) -> NDArray[np.uint8]:
    """RGB: red on the left half, blue on the right."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2] = (255, 0, 0)
    image[:, width // 2 :] = (0, 0, 255)
    return image


def _red_share(rgb: NDArray[np.uint8]) -> float:
    return float(((rgb[:, :, 0] > 180) & (rgb[:, :, 1] < 80) & (rgb[:, :, 2] < 80)).mean())


def _red_left_of_blue(screen: NDArray[np.uint8]) -> bool | None:
    red = np.argwhere((screen[:, :, 0] > 200) & (screen[:, :, 2] < 50))
    blue = np.argwhere((screen[:, :, 2] > 200) & (screen[:, :, 0] < 50))
    if len(red) < 1000 or len(blue) < 1000:
        return None  # not drawn yet
    return bool(red[:, 1].mean() < blue[:, 1].mean())


@pytest.mark.parametrize("mirror", [False, True])
async def test_the_window_shows_the_frame_mirrored_only_when_asked(xvfb: Xvfb, mirror: bool) -> None:
    window = PreviewWindow(lambda: None, mirror=mirror)
    assert no_display_reason() is None and await window.open() is None
    try:
        await _until(lambda: _red_left_of_blue(xvfb.screen()) is not None, (window, _marked()))
        assert _red_left_of_blue(xvfb.screen()) is (not mirror)
    finally:
        await window.close()
    assert window.exit_code == 0  # closed cleanly at the end of its input


async def test_showing_never_waits_for_the_window(xvfb: Xvfb) -> None:
    window = PreviewWindow(lambda: None)
    assert await window.open() is None
    frames = [_marked(1280, 720), np.zeros((720, 1280, 3), np.uint8)]
    try:
        start = time.perf_counter()
        for k in range(400):  # 16 s of 720p at 25 fps, handed over at once
            window.show(frames[k % 2])
        handed_s = time.perf_counter() - start
        # the first went on its way (1.5 MB at 960x540: more than a pipe holds), the rest dropped
        assert (window.frames_sent, window.frames_dropped) == (1, 399)
        await _until(lambda: _red_left_of_blue(xvfb.screen()) is True, (window, frames[0]))  # drawn
    finally:
        await window.close()
    assert handed_s < 0.1, handed_s


async def test_q_in_the_window_asks_to_stop(xvfb: Xvfb) -> None:
    asked: list[float] = []
    window = PreviewWindow(lambda: asked.append(time.monotonic()))
    assert await window.open() is None
    try:
        await _until(lambda: _red_left_of_blue(xvfb.screen()) is not None, (window, _marked()))
        _xdotool("search", "--sync", "--name", TITLE, "mousemove", "--window", "%1", "20", "20")
        # without a window manager the key goes to the window under the pointer once the server
        # has it there: a press that comes before is lost, so q is pressed again each second
        # (a user would, too); the window must answer one of them within 20 s
        deadline = time.monotonic() + 20.0
        while not asked and time.monotonic() < deadline:
            _xdotool("key", "q")
            await _until_s(lambda: len(asked) == 1, 1.0)
        assert len(asked) == 1, "q in the window never asked the run to stop"
    finally:
        await window.close()
    assert window.quit_pressed


@pytest.fixture
def long_speech(tmp_path: Path) -> Path:
    noise = 0.2 * np.random.default_rng(0).standard_normal(16_000 * 60).astype(np.float32)
    return write_wav(tmp_path / "speech.wav", noise, 16_000)


def test_run_preview_mirrored_and_q_stops_it_with_a_complete_unmirrored_file(
    xvfb: Xvfb, rt_face_photo: Path, long_speech: Path, tmp_path: Path
) -> None:
    photo = cv2.imread(str(rt_face_photo))
    photo[:40, :40] = (0, 0, 255)  # a red corner (BGR): top left in the file, top right mirrored
    cv2.imwrite(str(tmp_path / "marked.png"), photo)
    out = tmp_path / "call.mp4"
    cmd = [sys.executable, "-m", "stablesync", "run", "--face", str(tmp_path / "marked.png")]
    cmd += ["--audio", str(long_speech), "--out", str(out), "--preview", "--mirror", "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)  # DISPLAY: the Xvfb
    try:
        _xdotool("search", "--sync", "--name", TITLE, "mousemove", "--window", "%1", "20", "20")
        width = photo.shape[1]
        _wait_for(lambda: _red_share(xvfb.screen()[5:35, width - 35 : width - 5]) > 0.9, 60)
        assert _red_share(xvfb.screen()[5:35, 5:35]) < 0.1  # not the corner that was red
        deadline = time.monotonic() + 60.0
        while proc.poll() is None and time.monotonic() < deadline:
            _xdotool("key", "q")  # again each second until the run stops (see the test above)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped on request" in err, err
    with av.open(str(out)) as container:
        first = np.asarray(next(container.decode(video=0)).to_ndarray(format="rgb24"), np.uint8)
    assert _red_share(first[5:35, 5:35]) > 0.9 and _red_share(first[5:35, -35:-5]) < 0.1  # as captured


def test_without_a_display_one_line_says_so_and_the_run_goes_on(
    rt_face_photo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    speech = write_wav(tmp_path / "s.wav", np.zeros(8_000, np.float32), 16_000)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    for display, why in (
        (None, "no display (DISPLAY and WAYLAND_DISPLAY unset)"),
        (":4321", "does not answer"),
    ):
        if display is None:
            monkeypatch.delenv("DISPLAY", raising=False)
        else:
            monkeypatch.setenv("DISPLAY", display)  # no server there: Qt would abort the process
        out = tmp_path / f"{display}.mp4"
        args = ["run", "--face", str(rt_face_photo), "--audio", str(speech), "--fast", "--quiet"]
        assert cli_main([*args, "--out", str(out), "--preview"]) == 0
        lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("preview:")]
        assert len(lines) == 1 and why in lines[0] and "running without it" in lines[0], lines
        assert out.is_file()


def test_mirror_without_preview_preview_only_without_display_and_with_serve_are_one_line_errors(
    rt_face_photo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    face = ["--face", str(rt_face_photo)]
    for args, said in (
        (["run", *face, "--out", "x.mp4", "--mirror"], "--mirror: mirrors the preview window only"),
        (["run", *face, "--preview"], "nothing to output to (--preview: no display"),
        (["demo", "--mirror"], "--mirror: mirrors the preview window only"),
        (["demo", "--serve", "--preview"], "with --serve the page shows it"),
    ):
        assert cli_main(args) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and said in err, err
