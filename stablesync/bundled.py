"""Where the files that ship inside the package are: the demo face and speech, the weights."""

from __future__ import annotations

from pathlib import Path

from stablesync.errors import UserError

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
DEMO_DIR = ASSETS_DIR / "demo"


def demo_assets() -> tuple[Path, Path]:
    """(face photo, speech wav) of the bundled demo; a one-line error when either is missing."""
    face, speech = DEMO_DIR / "face.png", DEMO_DIR / "speech.wav"
    for path in (face, speech):
        if not path.is_file():
            raise UserError(f"demo asset {path} is missing; reinstall stablesync (`make demo` installs it)")
    return face, speech
