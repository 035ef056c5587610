"""Choosing devices by name: cameras by part of the name Linux gives them (sysfs, as
`stablesync devices` lists them), microphones by sounddevice's own names or PulseAudio/PipeWire
source names (routed through the "pulse" ALSA device with PULSE_SOURCE)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stablesync.errors import UserError
from stablesync.realtime.local.sinks.pulse import pulse_available, source_names

SYS_V4L = Path("/sys/class/video4linux")


@dataclass(frozen=True)
class Camera:
    device: str  # what `--camera` takes: a path (Linux) or an index
    name: str
    virtual: bool  # a v4l2loopback device: a virtual camera to send to, not a webcam


def linux_cameras(root: Path = SYS_V4L) -> list[Camera]:
    """Video devices from sysfs: name, and whether the v4l2loopback driver made it."""
    cameras = []
    for entry in sorted(root.glob("video*"), key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        name = (entry / "name").read_text().strip() if (entry / "name").is_file() else entry.name
        driver = (
            (entry / "device" / "driver").resolve().name if (entry / "device" / "driver").exists() else ""
        )
        virtual = "loopback" in driver or "loopback" in name.lower()
        cameras.append(Camera(device=f"/dev/{entry.name}", name=name, virtual=virtual))
    return cameras


def resolve_camera(text: str | None, root: Path = SYS_V4L) -> int | str:
    """`--camera` -> what OpenCV opens: an index (default 0), a device path or URL as given, or
    the webcam whose name contains `text` (case-insensitive; the first, in device order)."""
    if text is None:
        return 0
    if text.isdigit():
        return int(text)
    if "/" in text or "://" in text or Path(text).is_file():
        return text
    webcams = [camera for camera in linux_cameras(root) if not camera.virtual]
    for camera in webcams:
        if text.lower() in camera.name.lower():
            return camera.device
    names = ", ".join(f"{c.name} ({c.device})" for c in webcams) or "(none found)"
    raise UserError(
        f"--camera {text}: no camera named like that; expected an index, a device path or part of"
        f" a camera's name: {names}"
    )


def _devices() -> list[dict[str, Any]]:
    import sounddevice as sd

    return [dict(d) for d in sd.query_devices()]


def resolve_input_device(name: str | None) -> int | str | None:
    """`--mic NAME` -> what sounddevice.InputStream takes. None: the default input."""
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    devices = _devices()
    for index, device in enumerate(devices):
        if device.get("max_input_channels", 0) > 0 and name.lower() in str(device["name"]).lower():
            return index
    if pulse_available() and name in source_names():
        os.environ["PULSE_SOURCE"] = name  # read by the ALSA pulse plugin when the stream opens
        return "pulse"
    inputs = [str(d["name"]) for d in devices if d.get("max_input_channels", 0) > 0]
    raise UserError(
        f"--mic {name}: no such input device; expected one of: {', '.join(inputs) or '(none found)'}"
    )
