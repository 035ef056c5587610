"""The Linux virtual microphone: a PulseAudio/PipeWire null sink we play into, and a source
remapped from its monitor, named `stablesync`, that conferencing apps pick as a microphone.

Created with `pactl load-module` (works on PulseAudio and on PipeWire's pipewire-pulse) and
unloaded on close; each run's modules carry its pid, so concurrent runs do not share (and
unload) each other's, and a crashed run's modules are unloaded by the next run.
macOS: install BlackHole and pass its name as the output device; Windows:
install VB-Cable and use "CABLE Input" (apps then pick "CABLE Output" as the microphone).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field

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


OWNER_PROPERTY = "stablesync.pid"  # set on every module a run loads: whose it is


def _owned_modules() -> list[tuple[int, int, str]]:
    """(module id, owner pid, arguments) of every module a stablesync run loaded."""
    out = []
    for line in _pactl("list", "short", "modules").splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or f"{OWNER_PROPERTY}=" not in fields[2]:
            continue
        pid = fields[2].split(f"{OWNER_PROPERTY}=", 1)[1].split()[0].strip("'\"")
        if pid.isdigit():
            out.append((int(fields[0]), int(pid), fields[2]))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_modules() -> int:
    """Unloads the modules of runs that are gone (a crash leaves them loaded); returns how many."""
    stale = [module for module, pid, _ in _owned_modules() if not _alive(pid)]
    for module in sorted(stale, reverse=True):  # sources (loaded after their sinks) first
        with contextlib.suppress(UserError):
            _pactl("unload-module", str(module))
    return len(stale)


@dataclass
class PulseVirtualMic:
    """One run's virtual microphone. Every run loads its own sink and source, tagged with its
    pid: a second run at the same time gets the next free name (`stablesync-2`, ...) instead of
    sharing, and losing, the first one's; modules left by a run that crashed are unloaded first."""

    base_name: str = "stablesync"
    owner_pid: int = field(default_factory=os.getpid)
    name: str = ""
    sink_module: int | None = None
    source_module: int | None = None
    stale_removed: int = 0

    @property
    def sink_name(self) -> str:
        return f"{self.name or self.base_name}_sink"

    def _free_name(self) -> str:
        sources, sinks = set(source_names()), set(sink_names())
        for k in range(1, 100):
            name = self.base_name if k == 1 else f"{self.base_name}-{k}"
            if name not in sources and f"{name}_sink" not in sinks:
                return name
        raise UserError(
            f"virtual microphone: {self.base_name}-2 .. -99 are all taken; remove some with pactl"
        )

    def create(self) -> str:
        """Loads the sink and the source; returns the source's name (what the call app picks)."""
        if shutil.which("pactl") is None or not pulse_available():
            raise UserError(
                "virtual microphone: no PulseAudio/PipeWire server answers `pactl info`;"
                " start one (pulseaudio --start) or install pipewire-pulse"
            )
        self.stale_removed = remove_stale_modules()
        self.name = self._free_name()
        owner = f"{OWNER_PROPERTY}={self.owner_pid}"
        self.sink_module = int(
            _pactl(
                "load-module",
                "module-null-sink",
                f"sink_name={self.sink_name}",
                f"sink_properties='device.description={self.sink_name} {owner}'",
            )
        )
        self.source_module = int(
            _pactl(
                "load-module",
                "module-remap-source",
                f"master={self.sink_name}.monitor",
                f"source_name={self.name}",
                f"source_properties='device.description={self.name} {owner}'",
            )
        )
        return self.name

    def remove(self) -> None:
        for module in (self.source_module, self.sink_module):
            if module is not None:
                with contextlib.suppress(UserError):
                    _pactl("unload-module", str(module))
        self.source_module = self.sink_module = None
