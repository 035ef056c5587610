"""`stablesync enroll`: stablesync/enroll/cli.py's command, and the guided camera take.

`stablesync enroll NAME --camera N|PATH --mic DEV [--seconds 90]` records the take with the
real-time path's camera and microphone sources (`realtime/local/take_recorder.py`: lines to read,
a live check of each second, a progress bar, one-line reasons for an unusable take; the same
over the camera picture in a preview window where a display exists), keeps it
in `$XDG_DATA_HOME/stablesync/takes/NAME` (mode 0700; a refused take leaves nothing there and
an older take stays), and enrolls from it exactly as from `--video FILE --audio FILE`. This
front lives in realtime/ because stablesync never imports realtime. `--resume` reuses the kept
take instead of recording again.
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from stablesync.enroll.cli import build_parser
from stablesync.errors import UserError

if TYPE_CHECKING:
    from stablesync.realtime.local.sinks.preview import PreviewWindow

__all__ = ["build_parser", "main"]
TAKE_VIDEO, TAKE_AUDIO = "take.mp4", "take.wav"


async def record(args: argparse.Namespace, folder: Path) -> str:
    """Records into `folder`; -> a one-line account of the take (or a UserError why not)."""
    from stablesync.realtime.cli.run import parse_size
    from stablesync.realtime.local.devices import resolve_input_device
    from stablesync.realtime.local.sources import CameraSource, MicSource
    from stablesync.realtime.local.take_recorder import RecordConfig, TakeRecorder

    width, height = parse_size(args.camera_size, "--camera-size")
    device: int | str = int(args.camera) if str(args.camera).isdigit() else str(args.camera)
    pace = isinstance(device, str) and Path(device).is_file()  # a video file: play it at 25 fps
    camera = CameraSource(device, width=width, height=height, fps=25.0)
    mic = MicSource(resolve_input_device(args.mic))
    window = None
    try:
        await camera.open()  # each a one-line error before the take starts
        await mic.open()
        cfg = RecordConfig(seconds=args.seconds, pace=pace)
        recorder = TakeRecorder(camera, mic, folder / TAKE_VIDEO, folder / TAKE_AUDIO, cfg)
        window = await open_preview(recorder.stop)
        recorder.preview = window
        take = await recorder.record()
    finally:
        await camera.close()
        await mic.close()
        if window is not None:
            await window.close()
    return (
        f"enroll: take of {take.duration_s:.1f} s recorded; head turned away in {take.turned} and mouth"
        f" out of the picture in {take.mouth_hidden} of {take.sampled} looks"
    )


async def open_preview(on_quit: Callable[[], None]) -> PreviewWindow | None:
    """The preview window where a display exists (q or Esc ends the take), else None and a line
    saying why (the terminal shows the same)."""
    from stablesync.realtime.local.sinks.preview import PreviewWindow, no_display_reason

    reason = no_display_reason()
    window = PreviewWindow(on_quit, title="stablesync enroll") if reason is None else None
    if window is not None:
        reason = await window.open()
    if reason is None:
        return window
    print(f"enroll: no preview window ({reason}); the lines to read are shown here", flush=True)
    return None


def main(args: argparse.Namespace) -> int:
    from stablesync.enroll import cli as enroll_cli
    from stablesync.enroll.pipeline import check_profile_free
    from stablesync.enroll.profiles import check_name, make_take_dir, take_dir

    if args.camera is None:
        if args.mic is not None:
            raise UserError(f"--mic {args.mic}: only used with --camera (a take to record)")
        return enroll_cli.main(args)
    if args.video is not None or args.audio is not None:
        raise UserError("--camera with --video/--audio: give one, a take to record or a recording")
    if not (math.isfinite(args.seconds) and args.seconds > 0):
        raise UserError(f"--seconds {args.seconds}: expected a positive number of seconds")
    check_name(args.name)
    check_profile_free(args.name, args.overwrite, args.resume)  # before, not after, the take
    kept = take_dir(args.name)
    if args.resume and (kept / TAKE_VIDEO).is_file() and (kept / TAKE_AUDIO).is_file():
        print(f"enroll: resuming with the take kept in {kept}", flush=True)
    else:
        make_take_dir(args.name)
        account = asyncio.run(record(args, kept))  # its files are moved in only when usable
        print(f"{account}; kept in {kept}", flush=True)
    args.video, args.audio, args.camera = kept / TAKE_VIDEO, kept / TAKE_AUDIO, None
    return enroll_cli.main(args)
