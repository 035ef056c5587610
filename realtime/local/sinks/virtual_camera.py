"""Virtual camera output through pyvirtualcam (v4l2loopback on Linux, OBS on macOS/Windows).

Negotiation: the camera is opened at the first frame's size and the run's fps in RGB; if the
device's native pixel format is one we can produce directly (BGR, I420), it is reopened in
that format so no conversion happens inside the backend. A device that refuses the size is
tried at 1280x720 and 640x480, and frames are resized to what it took.
"""

from __future__ import annotations

import asyncio
import platform
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from stablesync.errors import UserError
from stablesync.realtime.pipeline.frames import RgbImage

FALLBACK_SIZES = ((1280, 720), (640, 480))


def no_device_fix() -> str:
    system = platform.system()
    if system == "Linux":
        return (
            "install v4l2loopback and load it: sudo apt install v4l2loopback-dkms &&"
            " sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label=stablesync"
        )
    if system == "Darwin":
        return "install OBS Studio and start its virtual camera once (Tools > Start Virtual Camera)"
    if system == "Windows":
        return "install OBS Studio (its virtual camera) or Unity Capture"
    return "this platform has no pyvirtualcam backend"


def fit_frame(image: RgbImage, size: tuple[int, int]) -> RgbImage:
    """`image` scaled to fit inside `size` (w, h), centred; the margins are the image itself,
    scaled to cover and blurred (no black bars). Same aspect ratio: a plain resize."""
    w, h = size
    ih, iw = image.shape[:2]
    scale = min(w / iw, h / ih)
    fw, fh = max(1, round(iw * scale)), max(1, round(ih * scale))
    fitted = cv2.resize(image, (fw, fh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if (fw, fh) == (w, h):
        return np.asarray(fitted, dtype=np.uint8)
    cover = max(w / iw, h / ih)
    small = cv2.resize(image, (max(1, round(iw * cover / 8)), max(1, round(ih * cover / 8))))
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=4)
    back = cv2.resize(small, (round(iw * cover), round(ih * cover)), interpolation=cv2.INTER_LINEAR)
    y0, x0 = (back.shape[0] - h) // 2, (back.shape[1] - w) // 2
    out = np.ascontiguousarray(back[y0 : y0 + h, x0 : x0 + w])
    oy, ox = (h - fh) // 2, (w - fw) // 2
    out[oy : oy + fh, ox : ox + fw] = fitted
    return np.asarray(out, dtype=np.uint8)


@dataclass(frozen=True)
class VirtualCameraConfig:
    fps: float = 25.0
    device: str | None = None
    backend: str | None = None  # a pyvirtualcam backend name; None: the platform's
    # The size call apps are sent (most reject or letterbox odd sizes such as a 256x300 photo);
    # a frame of another shape is fitted inside it over a blurred fill of itself. None: the
    # frame's own size.
    size: tuple[int, int] | None = (1280, 720)


class VirtualCameraSink:
    def __init__(self, cfg: VirtualCameraConfig = VirtualCameraConfig()) -> None:
        self.cfg = cfg
        self._camera: Any = None
        self._fmt: Any = None
        self._size: tuple[int, int] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-vcam")
        self.frames_sent = 0

    @property
    def device(self) -> str | None:
        return None if self._camera is None else str(self._camera.device)

    @property
    def negotiated(self) -> dict[str, Any]:
        if self._camera is None:
            return {}
        return {
            "device": str(self._camera.device),
            "backend": str(self._camera.backend),
            "width": int(self._camera.width),
            "height": int(self._camera.height),
            "fps": float(self._camera.fps),
            "format": self._fmt.name,
        }

    def _try_open(self, width: int, height: int, fmt: Any) -> Any:
        import pyvirtualcam

        return pyvirtualcam.Camera(
            width, height, self.cfg.fps, fmt=fmt, device=self.cfg.device, backend=self.cfg.backend
        )

    def open(self, width: int, height: int) -> None:
        """Opens the device (blocking; call from a worker thread or before the loop runs)."""
        from pyvirtualcam import PixelFormat

        errors: list[str] = []
        for w, h in ((width, height), *FALLBACK_SIZES):
            try:
                camera = self._try_open(w, h, PixelFormat.RGB)
            except Exception as exc:  # pyvirtualcam raises RuntimeError listing each backend's reason
                errors.append(" ".join(str(exc).split()))
                continue
            native = camera.native_fmt
            fmt = PixelFormat.RGB
            if native in (PixelFormat.BGR, PixelFormat.I420) and native != PixelFormat.RGB:
                camera.close()
                camera = self._try_open(w, h, native)
                fmt = native
            self._camera, self._fmt, self._size = camera, fmt, (w, h)
            return
        where = self.cfg.device or "any device"
        raise UserError(
            f"virtual camera ({where}): none available ({errors[0] if errors else '?'}); {no_device_fix()}"
        )

    def _convert(self, image: RgbImage) -> RgbImage:
        from pyvirtualcam import PixelFormat

        assert self._size is not None
        if (image.shape[1], image.shape[0]) != self._size:
            image = fit_frame(image, self._size)
        if self._fmt == PixelFormat.BGR:
            return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), dtype=np.uint8)
        if self._fmt == PixelFormat.I420:
            return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8)
        return image

    def _send(self, image: RgbImage) -> None:
        if self._camera is None:
            self.open(*(self.cfg.size or (image.shape[1], image.shape[0])))
        self._camera.send(self._convert(image))
        self.frames_sent += 1

    async def send(self, image: RgbImage) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._send, image)

    async def close(self) -> None:
        def _close() -> None:
            if self._camera is not None:
                self._camera.close()
                self._camera = None

        await asyncio.get_running_loop().run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=True)
