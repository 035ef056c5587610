"""Choosing audio devices by name: sounddevice's own names, or PulseAudio/PipeWire source names
(routed through the "pulse" ALSA device with PULSE_SOURCE)."""

from __future__ import annotations

import os
from typing import Any

from realtime.sinks.pulse import pulse_available, source_names
from stablesync.errors import UserError


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
