"""`python -m stablesync.face.install_models [--dest DIR] [--force]`: an install step (run by
`make demo`), never run time. Where mediapipe 0.10.21 cannot be installed (Python >= 3.13),
its wheel is still on the package index: pip downloads the cp312 Linux wheel (any platform's
holds the same files) and the face detector and 468-point landmark model are taken out of it,
checked against their SHA-256, into this environment (`model_files.extracted_dir()`).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from stablesync.face.model_files import DETECTOR_FILE, LANDMARK_FILE, extracted_dir, installed_mediapipe

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
# Member of the wheel -> (file name here, SHA-256 of mediapipe 0.10.21's file).
MEMBERS = {
    f"mediapipe/modules/face_detection/{DETECTOR_FILE}": (
        DETECTOR_FILE,
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    f"mediapipe/modules/face_landmark/{LANDMARK_FILE}": (
        LANDMARK_FILE,
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
    ),
}


def extract(wheel: Path, dest: Path) -> list[Path]:
    """The face models out of a mediapipe wheel into `dest`; ValueError when one differs."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as zf:
        for member, (name, sha256) in MEMBERS.items():
            data = zf.read(member)
            if hashlib.sha256(data).hexdigest() != sha256:
                raise ValueError(f"{wheel.name}: {member} is not mediapipe 0.10.21's (SHA-256 differs)")
            tmp = dest / f"{name}.partial"
            tmp.write_bytes(data)
            written.append(tmp.replace(dest / name))
    return written


def download_wheel(folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
    cmd += ["--platform", "manylinux_2_28_x86_64", "--python-version", "3.12", "--dest", str(folder)]
    subprocess.run([*cmd, WHEEL_REQUIREMENT], check=True)
    return next(folder.glob("mediapipe-*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.face.install_models", description=__doc__)
    parser.add_argument("--dest", type=Path, default=None, help="folder (default: inside this environment)")
    parser.add_argument("--force", action="store_true", help="also where mediapipe itself is installed")
    args = parser.parse_args(argv)
    if installed_mediapipe() is not None and not args.force:
        print("mediapipe is installed: the tracker uses its own model files")
        return 0
    dest = args.dest or extracted_dir()
    with tempfile.TemporaryDirectory() as tmp:
        for path in extract(download_wheel(Path(tmp)), dest):
            print(f"installed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
