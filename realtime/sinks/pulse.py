"""The Linux virtual microphone: a PulseAudio/PipeWire null sink we play into, and a source
remapped from its monitor, named `stablesync`, that conferencing apps pick as a microphone.

Created with `pactl load-module` (works on PulseAudio and on PipeWire's pipewire-pulse) and
unloaded on close. macOS: install BlackHole and pass its name as the output device; Windows:
install VB-Cable and use "CABLE Input" (apps then pick "CABLE Output" as the microphone).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass

from stablesync.errors import UserError


def _pactl(*args: str, timeout_s: float = 5.0) -> str:
    try:
        out = subprocess.run(["pactl", *args], capture_output=True, text=True, timeout=timeout_s, check=True)
    except subprocess.CalledProcessError as exc:
        raise UserError(f"pactl {' '.join(args)}: {exc.stderr.strip() or exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise UserError(f"pactl {args[0]}: no answer from the sound server in {timeout_s:.0f} s") from exc
    return out.stdout.strip()


def pulse_available() -> bool:
    if shutil.which("pactl") is None:
        return False
    try:
        subprocess.run(["pactl", "info"], capture_output=True, timeout=5, check=True)
    except (subprocess.SubprocessError, OSError):
        return False
    return True


def source_names() -> list[str]:
    return [line.split("\t")[1] for line in _pactl("list", "short", "sources").splitlines() if "\t" in line]


def sink_names() -> list[str]:
    return [line.split("\t")[1] for line in _pactl("list", "short", "sinks").splitlines() if "\t" in line]


@dataclass
class PulseVirtualMic:
    name: str = "stablesync"
    sink_module: int | None = None
    source_module: int | None = None

    @property
    def sink_name(self) -> str:
        return f"{self.name}_sink"

    def create(self) -> None:
        if shutil.which("pactl") is None or not pulse_available():
            raise UserError(
                "virtual microphone: no PulseAudio/PipeWire server answers `pactl info`;"
                " start one (pulseaudio --start) or install pipewire-pulse"
            )
        if self.sink_name not in sink_names():
            self.sink_module = int(
                _pactl(
                    "load-module",
                    "module-null-sink",
                    f"sink_name={self.sink_name}",
                    f"sink_properties=device.description={self.sink_name}",
                )
            )
        if self.name not in source_names():
            self.source_module = int(
                _pactl(
                    "load-module",
                    "module-remap-source",
                    f"master={self.sink_name}.monitor",
                    f"source_name={self.name}",
                    f"source_properties=device.description={self.name}",
                )
            )

    def remove(self) -> None:
        for module in (self.source_module, self.sink_module):
            if module is not None:
                with contextlib.suppress(UserError):
                    _pactl("unload-module", str(module))
        self.source_module = self.sink_module = None
