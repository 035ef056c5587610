"""Video sources: webcam (OpenCV), still image (avatar mode), looping video file (PyAV)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from stablesync.errors import UserError
from stablesync.realtime.local.sources.errors import SourceError
from stablesync.realtime.pipeline.clock import StreamClock
from stablesync.realtime.pipeline.frames import NS_PER_S, RgbImage, VideoFrame

EmitVideo = Callable[[VideoFrame], Awaitable[None]]


def load_image(path: str | Path, max_side_px: int = 1280, min_side_px: int = 32) -> RgbImage:
    """An image file -> RGB uint8 (H, W, 3) with even sides (video encoders need them); one
    smaller than `min_side_px` (no face fits) is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: image not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{path}: not a readable image; expected a PNG or JPEG photo of a face")
    h, w = bgr.shape[:2]
    if min(h, w) < min_side_px:
        raise UserError(
            f"{path}: the image is {w}x{h} pixels; expected a photo of a face at least"
            f" {min_side_px}x{min_side_px}"
        )
    scale = min(1.0, max_side_px / max(h, w))
    if scale < 1.0:
        bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    h, w = bgr.shape[:2]
    bgr = bgr[: h - h % 2, : w - w % 2]
    return np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


class ImageSource:
    """Avatar mode: the same photo as a video at `fps`, for `duration_s` (None: until stopped)."""

    def __init__(self, image: RgbImage, fps: float = 25.0, duration_s: float | None = None) -> None:
        self.image = image
        self.fps = fps
        self.duration_s = duration_s

    async def run(self, emit: EmitVideo, clock: StreamClock) -> None:
        index = 0
        while self.duration_s is None or index < round(self.duration_s * self.fps):
            pts_ns = round(index * NS_PER_S / self.fps)
            await clock.wait_for_pts(pts_ns)
            await emit(VideoFrame(self.image, clock.capture_ns(pts_ns), pts_ns, index, still=index > 0))
            index += 1


class VideoFileSource:
    """A video file decoded with PyAV, paced at its frame rate, looped for `duration_s` (None: forever)."""

    def __init__(self, path: str | Path, duration_s: float | None = None, max_side_px: int = 1280) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: video file not found")
        self.duration_s = duration_s
        self.max_side_px = max_side_px
        self._decoded: tuple[list[RgbImage], float] | None = None

    def _decode_all(self) -> tuple[list[RgbImage], float]:
        from stablesync.media import iter_video_frames, video_info

        fps, _, _ = video_info(self.path)
        frames = [image for image, _ in iter_video_frames(self.path)]
        if not frames:
            raise UserError(f"{self.path}: the video holds no frames")
        out: list[RgbImage] = []
        for f in frames:
            h, w = f.shape[:2]
            scale = min(1.0, self.max_side_px / max(h, w))
            if scale < 1.0:
                f = np.asarray(
                    cv2.resize(f, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA),
                    dtype=np.uint8,
                )
            h, w = f.shape[:2]
            out.append(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]))
        return out, fps

    async def open(self) -> None:
        """Decodes the whole file (a bad file is a UserError before anything starts)."""
        if self._decoded is None:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-videofile") as pool:
                self._decoded = await asyncio.get_running_loop().run_in_executor(pool, self._decode_all)

    async def close(self) -> None:
        self._decoded = None

    async def run(self, emit: EmitVideo, clock: StreamClock) -> None:
        await self.open()
        assert self._decoded is not None
        frames, fps = self._decoded
        total = None if self.duration_s is None else round(self.duration_s * fps)
        index = 0
        while total is None or index < total:
            pts_ns = round(index * NS_PER_S / fps)
            await clock.wait_for_pts(pts_ns)
            await emit(VideoFrame(frames[index % len(frames)], clock.capture_ns(pts_ns), pts_ns, index))
            index += 1


class CameraSource:
    """An OpenCV capture device (index, or a path/URL OpenCV opens). A failed read is retried by
    reopening the device for `reconnect_s`; after that the source raises SourceError."""

    def __init__(
        self,
        device: int | str = 0,
        width: int = 640,
        height: int = 480,
        fps: float = 25.0,
        reconnect_s: float = 2.0,
    ) -> None:
        self.device = device
        self.width, self.height, self.fps = width, height, fps
        self.reconnect_s = reconnect_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-camera")
        self._capture: Any = None
        self._closed = False

    def _open(self) -> bool:
        cap = cv2.VideoCapture(self.device)
        if not cap.isOpened():
            cap.release()
            return False
        if isinstance(self.device, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            cap.set(cv2.CAP_PROP_FPS, self.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._capture = cap
        return True

    def _read(self) -> tuple[RgbImage | None, int]:
        if self._capture is None:
            return None, time.monotonic_ns()
        ok, bgr = self._capture.read()
        now = time.monotonic_ns()
        if not ok or bgr is None:
            return None, now
        h, w = bgr.shape[:2]
        return np.ascontiguousarray(cv2.cvtColor(bgr[: h - h % 2, : w - w % 2], cv2.COLOR_BGR2RGB)), now

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    async def open(self) -> None:
        """Opens the device (a camera that cannot open is a UserError before anything starts)."""
        if self._capture is None and not await asyncio.get_running_loop().run_in_executor(
            self._executor, self._open
        ):
            raise UserError(
                f"camera {self.device}: cannot open it; expected a connected webcam"
                " (Linux: ls /dev/video*; try another --camera index)"
            )

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.get_running_loop().run_in_executor(self._executor, self._release)
            self._executor.shutdown(wait=False)

    async def run(self, emit: EmitVideo, clock: StreamClock) -> None:
        loop = asyncio.get_running_loop()
        try:
            await self.open()
            index = 0
            while True:
                image, now_ns = await loop.run_in_executor(self._executor, self._read)
                if image is None:
                    if not await self._reconnect(loop):
                        raise SourceError(
                            f"camera {self.device} stopped delivering frames and did not come back"
                        )
                    continue
                pts_ns = now_ns - clock.start_ns
                await emit(VideoFrame(image, now_ns, pts_ns, index))
                index += 1
        finally:
            await self.close()

    async def _reconnect(self, loop: asyncio.AbstractEventLoop) -> bool:
        give_up = time.monotonic() + self.reconnect_s
        while time.monotonic() < give_up:
            await loop.run_in_executor(self._executor, self._release)
            if await loop.run_in_executor(self._executor, self._open):
                image, _ = await loop.run_in_executor(self._executor, self._read)
                if image is not None:
                    return True
            await asyncio.sleep(0.2)
        return False
