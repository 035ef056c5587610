"""`--preview`: a window showing the output frames, as they go to the virtual camera and file.

The window is a child process (`python -m stablesync.realtime.local.sinks.preview`, OpenCV's HighGUI: Qt on
Linux, Cocoa, Win32), so nothing it does reaches the run: a slow draw, Qt's event handling,
or Qt aborting when the X server goes away. Frames go down its stdin; `show` never waits: while
the previous frame is still on its way (the window draws slower than frames come), the new one
is dropped and counted. The child says on stdout when the window opened and when q or Esc was
pressed in it (`on_quit`: the run stops as on Ctrl-C); closing the window ends the child and
only the preview, the run goes on. `mirror` flips what the window shows (a self-view, as call
apps show it), never the frames themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import select
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable, Mapping

import numpy as np

from stablesync.realtime.pipeline.frames import RgbImage

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # 27: Esc
CLOSED_AFTER_S = 1.0  # a window not visible this long was closed
HEADER = struct.Struct("<II")  # height, width of the RGB frame that follows


def _x_display_answers(display: str) -> bool:
    """Whether the X server DISPLAY names accepts a connection."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not number.isdigit():
        return False
    try:
        if host in ("", "unix"):
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(2.0)
                s.connect(f"/tmp/.X11-unix/X{number}")
        else:
            socket.create_connection((host, 6000 + int(number)), timeout=2.0).close()
    except OSError:
        return False
    return True


def no_display_reason(env: Mapping[str, str] | None = None) -> str | None:
    """None where a window can open; else why not, in a few words."""
    env = os.environ if env is None else env
    if platform.system() != "Linux":
        return None  # macOS and Windows always have their window system
    display = env.get("DISPLAY", "")
    if display:
        return None if _x_display_answers(display) else f"the X display DISPLAY={display} does not answer"
    if env.get("WAYLAND_DISPLAY"):
        return "Wayland without XWayland (DISPLAY unset); the window needs X"
    return "no display (DISPLAY and WAYLAND_DISPLAY unset)"


def _fit(image: RgbImage, max_side_px: int) -> RgbImage:
    import cv2

    scale = max_side_px / max(image.shape[:2])
    if scale >= 1.0:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


class PreviewWindow:
    def __init__(
        self,
        on_quit: Callable[[], None],
        mirror: bool = False,
        title: str = "stablesync preview",
        max_side_px: int = 960,
    ) -> None:
        self.on_quit, self.mirror, self.title, self.max_side_px = on_quit, mirror, title, max_side_px
        self._proc: asyncio.subprocess.Process | None = None
        self._events: asyncio.Task[None] | None = None
        self.frames_sent = 0
        self.frames_dropped = 0
        self.quit_pressed = False
        self.window_closed = False
        self.exit_code: int | None = None  # the window's process's, once closed

    async def open(self, timeout_s: float = 20.0) -> str | None:
        """Starts the window's process; returns None once the window is open, else why not."""
        cmd = [sys.executable, "-m", "stablesync.realtime.local.sinks.preview", "--title", self.title]
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            *(["--mirror"] if self.mirror else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,  # Qt's font and platform warnings
        )
        self._proc = proc
        assert proc.stdout is not None
        try:
            said = (await asyncio.wait_for(proc.stdout.readline(), timeout_s)).decode().strip()
        except TimeoutError:
            said = f"error: the window did not open within {timeout_s:g} s"
        if said != "opened":
            await self.close()
            return said.removeprefix("error: ") or f"the window's process ended (exit {proc.returncode})"
        self._events = asyncio.create_task(self._read_events(proc))
        return None

    async def _read_events(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            if line.strip() == b"quit" and not self.quit_pressed:
                self.quit_pressed = True
                self.on_quit()
        self.window_closed = True  # closed by the user, or its process ended

    def show(self, image: RgbImage) -> None:
        """Hands the frame to the window; never waits (drops it while the last is on its way)."""
        stdin = self._proc.stdin if self._proc is not None else None
        if stdin is None or stdin.is_closing() or self.window_closed:
            return
        if stdin.transport.get_write_buffer_size() > 0:  # type: ignore[attr-defined]
            self.frames_dropped += 1
            return
        frame = np.ascontiguousarray(_fit(image, self.max_side_px))
        stdin.write(HEADER.pack(*frame.shape[:2]) + frame.tobytes())
        self.frames_sent += 1

    async def close(self, timeout_s: float = 3.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the window's process ends at the end of its input
        try:
            self.exit_code = await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            self.exit_code = await proc.wait()
        if self._events is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._events, timeout_s)


def _read_exactly(fd: int, size: int) -> bytes | None:
    parts, got = [], 0
    while got < size:
        part = os.read(fd, size - got)
        if not part:
            return None
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def window_main(title: str, mirror: bool, pump_s: float = 0.05) -> int:
    """The window's process: shows each frame from stdin until its end; says `opened`, `quit`."""
    import cv2

    try:
        cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
    except cv2.error as exc:  # e.g. an OpenCV built without a GUI
        print(f"error: OpenCV cannot open a window: {str(exc).strip().splitlines()[-1]}", flush=True)
        return 1
    print("opened", flush=True)
    fd, shown = sys.stdin.fileno(), False
    hidden_since: float | None = None
    while True:
        readable, _, _ = select.select([fd], [], [], pump_s)  # a frame, or the window's events
        if readable:
            header = _read_exactly(fd, HEADER.size)
            height, width = HEADER.unpack(header) if header else (0, 0)
            data = _read_exactly(fd, height * width * 3) if header else None
            if data is None:
                break  # the run closed the preview
            image = np.frombuffer(data, np.uint8).reshape(height, width, 3)
            cv2.imshow(title, np.ascontiguousarray(image[:, ::-1, ::-1] if mirror else image[:, :, ::-1]))
            shown = True
        key = cv2.waitKey(1)
        if key != -1 and key & 0xFF in QUIT_KEYS:
            print("quit", flush=True)
        if shown:
            # a window being mapped or resized to a new frame size is briefly not visible either:
            # only one that stays hidden for `CLOSED_AFTER_S` was closed by the user
            if cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1:
                hidden_since = None
            elif hidden_since is None:
                hidden_since = time.monotonic()
            elif time.monotonic() - hidden_since > CLOSED_AFTER_S:
                return 0  # closed by the user
    cv2.destroyWindow(title)
    cv2.waitKey(1)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the run, which then closes this
    parser = argparse.ArgumentParser(description="the --preview window (started by stablesync)")
    parser.add_argument("--title", required=True)
    parser.add_argument("--mirror", action="store_true")
    options = parser.parse_args()
    sys.exit(window_main(options.title, options.mirror))
