"""`stablesync devices`: what the filter can take in and send out on this machine.

Lists cameras (Linux: /dev/video* with their names, v4l2loopback devices marked as virtual
cameras; elsewhere, with `--probe`, the OpenCV indexes that open), microphones and audio outputs
(sounddevice, plus PulseAudio/PipeWire sources and sinks where a server answers), the face
tracker that runs and the inference backends. Opening nothing and writing nothing, it is safe to
run at any time. `--json` prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from stablesync.realtime.local.devices import SYS_V4L, Camera, linux_cameras


@dataclass
class Devices:
    cameras: list[Camera] = field(default_factory=list)
    microphones: list[str] = field(default_factory=list)
    audio_outputs: list[str] = field(default_factory=list)
    pulse_sources: list[str] = field(default_factory=list)
    pulse_sinks: list[str] = field(default_factory=list)
    tracker: str = ""
    backends: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def probed_cameras(max_index: int = 4) -> list[Camera]:
    """Camera indexes OpenCV opens (its own probe messages silenced)."""
    import os

    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    import cv2

    found = []
    for index in range(max_index + 1):
        capture = cv2.VideoCapture(index)
        if capture.isOpened():
            found.append(Camera(device=str(index), name=f"camera {index}", virtual=False))
        capture.release()
    return found


def audio_devices(devices: Devices) -> None:
    try:
        import sounddevice as sd

        for d in sd.query_devices():
            info = dict(d)
            if info.get("max_input_channels", 0) > 0:
                devices.microphones.append(f"{info['name']} ({int(info['default_samplerate'])} Hz)")
            if info.get("max_output_channels", 0) > 0:
                devices.audio_outputs.append(f"{info['name']} ({int(info['default_samplerate'])} Hz)")
    except (OSError, ImportError) as exc:
        devices.notes.append(f"sounddevice: {exc}")
    from stablesync.realtime.local.sinks.pulse import pulse_available, sink_names, source_names

    if pulse_available():
        devices.pulse_sources = source_names()
        devices.pulse_sinks = sink_names()


def collect(probe: bool) -> Devices:
    import platform

    from stablesync.export.backends import available_backends
    from stablesync.face import describe_trackers

    devices = Devices()
    if platform.system() == "Linux" and SYS_V4L.is_dir():
        devices.cameras = linux_cameras()
    elif probe:
        devices.cameras = probed_cameras()
    else:
        devices.notes.append("cameras: pass --probe to try OpenCV camera indexes 0-4")
    if not any(c.virtual for c in devices.cameras):
        devices.notes.append(
            "no virtual camera: Linux `sudo modprobe v4l2loopback devices=1 exclusive_caps=1"
            " card_label=stablesync`; macOS/Windows: OBS Studio's virtual camera"
        )
    audio_devices(devices)
    devices.tracker = describe_trackers()
    devices.backends = list(available_backends())
    return devices


def render(devices: Devices) -> str:
    lines = ["cameras (--camera):"]
    lines += [f"  {c.device}  {c.name}" for c in devices.cameras if not c.virtual] or ["  (none found)"]
    lines += ["virtual cameras (--virtual-camera --camera-device):"]
    lines += [f"  {c.device}  {c.name}" for c in devices.cameras if c.virtual] or ["  (none)"]
    lines += ["microphones (--mic, a part of the name or the index):"]
    lines += [f"  {m}" for m in devices.microphones] or ["  (none found)"]
    if devices.pulse_sources:
        lines += [f"  PulseAudio source: {s}" for s in devices.pulse_sources]
    lines += ["audio outputs (--mic-output):"]
    lines += [f"  {o}" for o in devices.audio_outputs] or ["  (none found)"]
    if devices.pulse_sinks:
        lines += [f"  PulseAudio sink: {s}" for s in devices.pulse_sinks]
    lines += [devices.tracker, f"inference backends: {', '.join(devices.backends)}"]
    lines += [f"note: {n}" for n in devices.notes]
    return "\n".join(lines)


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the list")
    parser.add_argument("--probe", action="store_true", help="try OpenCV camera indexes (non-Linux)")
    return parser


def main(args: argparse.Namespace) -> int:
    devices = collect(args.probe)
    if args.json:
        payload: dict[str, Any] = asdict(devices)
        print(json.dumps(payload, indent=2))
    else:
        print(render(devices))
    return 0
