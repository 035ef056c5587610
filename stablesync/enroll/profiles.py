"""Where personal profiles live, and listing, showing and removing them (stdlib only).

A profile is a folder `$XDG_DATA_HOME/stablesync/profiles/NAME` (default `~/.local/share`),
mode 0700, holding an export directory (manifest.json, reference.onnx, frame.onnx,
lipsync.safetensors) plus `profile.json`, `report.json`, `contact_sheet.png` and `preview.mp4`.
While an enroll runs, or after it was interrupted, it also holds `work/` (the prepared take and
the training run); a profile without manifest.json is incomplete (`enroll NAME ... --resume`).
Nothing here is ever uploaded.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stablesync.errors import UserError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PROFILE_MODE = 0o700


def profiles_root() -> Path:
    """`$XDG_DATA_HOME/stablesync/profiles` (XDG_DATA_HOME defaults to ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "stablesync" / "profiles"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise UserError(
            f"profile name {name!r}: expected letters, digits, '_', '-' or '.' (up to 64, not starting"
            " with '.' or '-')"
        )
    return name


def profile_dir(name: str) -> Path:
    return profiles_root() / check_name(name)


def take_dir(name: str) -> Path:
    """Where a camera take for NAME is kept (`$XDG_DATA_HOME/stablesync/takes/NAME`), so an
    interrupted enroll resumes without recording again; `profiles remove` deletes it too."""
    return profiles_root().parent / "takes" / check_name(name)


def make_take_dir(name: str) -> Path:
    path = take_dir(name)
    path.mkdir(parents=True, exist_ok=True, mode=PROFILE_MODE)
    for folder in (path.parent, path):
        folder.chmod(PROFILE_MODE)
    return path


def make_profile_dir(name: str) -> Path:
    """Creates the profile folder (and its parents) readable by this user only."""
    path = profile_dir(name)
    path.mkdir(parents=True, exist_ok=True, mode=PROFILE_MODE)
    path.chmod(PROFILE_MODE)
    return path


def is_complete(path: Path) -> bool:
    return (path / "manifest.json").is_file()


def weights_of(name: str) -> Path:
    """The export directory of a finished profile (what `--weights DIR` would name)."""
    path = profile_dir(name)
    if not path.is_dir():
        raise UserError(
            f"--profile {name}: no such profile in {profiles_root()}; see `stablesync profiles list`"
        )
    if not is_complete(path):
        raise UserError(
            f"--profile {name}: incomplete (its enroll did not finish); run `stablesync enroll {name} ..."
            " --resume` or remove it"
        )
    return path


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    path: Path
    complete: bool
    details: dict[str, Any]

    def summary(self) -> str:
        if not self.complete:
            return f"{self.name}  (incomplete: enroll --resume, or profiles remove)"
        d = self.details
        parts = [self.name, str(d.get("created", "?"))]
        if "footage_s" in d:
            parts.append(f"{d['footage_s']:.0f} s of footage")
        if "steps" in d:
            parts.append(f"{d['steps']} steps")
        return "  ".join(parts)


def read_profile(path: Path) -> ProfileInfo:
    details: dict[str, Any] = {}
    info = path / "profile.json"
    if info.is_file():
        try:
            details = json.loads(info.read_text("utf-8"))
        except (OSError, ValueError):
            details = {}
    return ProfileInfo(path.name, path, is_complete(path), details)


def list_profiles() -> list[ProfileInfo]:
    root = profiles_root()
    if not root.is_dir():
        return []
    return [read_profile(p) for p in sorted(root.iterdir()) if p.is_dir() and NAME_PATTERN.match(p.name)]


def remove_profile(name: str) -> Path:
    path, take = profile_dir(name), take_dir(name)
    if not path.is_dir() and not take.is_dir():
        raise UserError(f"profile {name}: not found in {profiles_root()}")
    shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(take, ignore_errors=True)  # the camera take it was made from
    return path
