"""A real headless Chromium for the WebRTC tests, driven through chromedriver's W3C WebDriver
HTTP protocol (no extra package), its camera and microphone fed from files."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import av

from stablesync.media import write_wav
from stablesync.realtime.webrtc.clip import SEND_RATE_HZ, Clip

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def write_fake_media(clip: Clip, folder: Path) -> tuple[Path, Path]:
    """The clip as the y4m and wav files Chromium's fake capture devices read."""
    y4m, wav = folder / "camera.y4m", folder / "microphone.wav"
    with av.open(str(y4m), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=round(clip.fps))
        stream.width, stream.height = clip.frames.shape[2], clip.frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for image in clip.frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    write_wav(wav, clip.audio, SEND_RATE_HZ)
    return y4m, wav


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Browser:
    """chromedriver + one Chromium session; use as a context manager (blocking calls)."""

    def __init__(self, y4m: Path, wav: Path) -> None:
        self._profile = Path(tempfile.mkdtemp(prefix="stablesync-chromium-"))
        self._port = _free_port()
        self._driver = subprocess.Popen(
            [CHROMEDRIVER, f"--port={self._port}", "--allowed-ips=127.0.0.1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={self._profile}",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}",
            f"--use-file-for-fake-audio-capture={wav}",
            "--autoplay-policy=no-user-gesture-required",
            "--allow-loopback-in-peer-connection",  # the suite runs in a loopback-only namespace
        ]
        self._session: str | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self._port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())["value"]

    def __enter__(self) -> Browser:
        for _ in range(100):  # chromedriver starts in well under a second
            try:
                self._call("GET", "/status")
                break
            except OSError:
                time.sleep(0.1)
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": self._args}}
        self._session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        return self

    def open(self, url: str) -> None:
        self._call("POST", f"/session/{self._session}/url", {"url": url})

    def script(self, source: str) -> Any:
        return self._call("POST", f"/session/{self._session}/execute/sync", {"script": source, "args": []})

    def __exit__(self, *exc: object) -> None:
        try:
            if self._session is not None:
                self._call("DELETE", f"/session/{self._session}")
        except OSError:
            pass
        finally:
            self._driver.terminate()
            try:
                self._driver.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._driver.kill()
            shutil.rmtree(self._profile, ignore_errors=True)
