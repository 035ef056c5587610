"""`stablesync enroll NAME --video FILE [--audio FILE]`: a personal profile from a recording.
`stablesync enroll NAME --camera N --mic DEV [--seconds 90]` records the take first: lines to
read aloud, a live check of each second, a progress bar (realtime/cli/enroll.py), then the same.

Checks the take (one line per reason it cannot be used), prepares it like `data prepare`,
keeps its last ~15% aside, fine-tunes the shipped G_L on the rest within `--minutes`, exports
the profile into `$XDG_DATA_HOME/stablesync/profiles/NAME` (mode 0700, never uploaded) and
validates it against the shipped weights on the held-aside seconds (report.json, contact
sheet, preview). Use it with `stablesync run|demo|serve --profile NAME`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from stablesync.errors import UserError

DEFAULT_MINUTES = 6.0  # training; with preparing, exporting and validating 60 s of footage fits 10 min


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("name", help="profile name (letters, digits, _ - .)")
    p.add_argument("--video", type=Path, help="a recording of you speaking to the camera (60-90 s is best)")
    p.add_argument("--audio", type=Path, default=None, help="its sound, when not in the video file")
    p.add_argument(
        "--camera",
        default=None,
        help="record a guided take from this camera: index, device path, or a video file played as one",
    )
    p.add_argument(
        "--mic", default=None, help="with --camera: microphone (index, part of its name, PulseAudio source)"
    )
    p.add_argument(
        "--seconds", type=float, default=90.0, help="with --camera: length of the take (default 90)"
    )
    p.add_argument(
        "--camera-size", default="640x480", help="with --camera: capture size WxH (default 640x480)"
    )
    p.add_argument(
        "--minutes",
        type=float,
        default=DEFAULT_MINUTES,
        help=f"training budget (default {DEFAULT_MINUTES:g})",
    )
    p.add_argument("--steps", type=int, default=0, help="train exactly this many steps instead of --minutes")
    p.add_argument("--holdout", type=float, default=0.15, help="share of the take kept aside (default 0.15)")
    p.add_argument(
        "--validate-s", type=float, default=8.0, help="held-aside seconds rendered for the report (default 8)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="training batch (default 8)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted enroll of NAME")
    p.add_argument("--overwrite", action="store_true", help="replace an existing profile NAME")
    p.add_argument("--keep-work", action="store_true", help="keep the prepared take and training run")
    return p


def main(args: argparse.Namespace) -> int:
    from stablesync.enroll.pipeline import EnrollConfig, enroll
    from stablesync.enroll.profiles import check_name, profile_dir
    from stablesync.media import read_audio

    check_name(args.name)
    if args.video is None:
        raise UserError(
            "--video FILE or --camera N is required (a recording of you speaking, or a take to record)"
        )
    if not (math.isfinite(args.minutes) and args.minutes > 0):
        raise UserError(f"--minutes {args.minutes}: expected a positive number of minutes")
    if not 0.05 <= args.holdout <= 0.5:
        raise UserError(f"--holdout {args.holdout}: expected a share between 0.05 and 0.5")
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected 1 or more")
    if args.steps < 0:
        raise UserError(f"--steps {args.steps}: expected 0 (use --minutes) or more")
    if not args.video.is_file():
        raise UserError(f"--video {args.video}: not found; expected a recording of you speaking")
    audio = read_audio(args.audio if args.audio is not None else args.video)
    cfg = EnrollConfig(
        name=args.name,
        video=args.video,
        audio=audio,
        minutes=args.minutes,
        steps=args.steps,
        holdout_fraction=args.holdout,
        resume=args.resume,
        overwrite=args.overwrite,
        keep_work=args.keep_work,
        threads=args.threads,
        validate_s=args.validate_s,
        batch_size=args.batch_size,
    )
    try:
        report = enroll(cfg)
    except KeyboardInterrupt:
        print(
            f"stablesync enroll: stopped; the last checkpoint is kept in {profile_dir(args.name) / 'work'}:"
            f" run the same command with --resume to continue",
            file=sys.stderr,
        )
        raise
    print(json.dumps({"profile": str(profile_dir(args.name)), **report}, indent=1, default=float))
    print(f"use it: stablesync run --profile {args.name} ...", file=sys.stderr)
    return 0
