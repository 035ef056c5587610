"""What a camera take shows in the terminal: the line to read, a progress bar, and each second
what is wrong with it (on a terminal the bar is one line redrawn in place; otherwise, e.g. in a
log, one line per second). Where a display exists the same goes over the camera picture in the
preview window (`overlay`: mirrored like a call app's self-view, the text drawn after)."""

from __future__ import annotations

import sys
from typing import TextIO

import cv2
import numpy as np

from stablesync.enroll.checks import FaceSample, TakeChecks
from stablesync.enroll.script import Cue, Script
from stablesync.realtime.pipeline.frames import RgbImage

BAR_WIDTH = 30
FONT = cv2.FONT_HERSHEY_SIMPLEX


def wrap(text: str, width_px: int, scale: float) -> list[str]:
    """`text` in lines no wider than `width_px` in FONT at `scale`."""
    lines: list[str] = []
    for word in text.split():
        trial = f"{lines[-1]} {word}" if lines else word
        if lines and cv2.getTextSize(trial, FONT, scale, 1)[0][0] <= width_px:
            lines[-1] = trial
        else:
            lines.append(word)
    return lines


def draw_lines(image: RgbImage, lines: list[str], top_px: int, scale: float, colour: tuple[int, ...]) -> None:
    """Lines of text from `top_px` down, on a dark band (in place)."""
    step = round(32 * scale) + 6
    band = image[top_px : top_px + step * len(lines) + 6]
    band[:] = (band * 0.35).astype(np.uint8)
    for i, line in enumerate(lines):
        origin = (8, top_px + step * (i + 1))
        cv2.putText(image, line, origin, FONT, scale, colour, 1 + (scale > 0.6), cv2.LINE_AA)


def second_problems(sample: FaceSample | None, loud_dbfs: float, cue: Cue, checks: TakeChecks) -> list[str]:
    """What to fix, from the latest face sample and the second's loudest speech (empty: fine)."""
    out: list[str] = []
    if sample is None:
        out.append("looking for your face")
    elif sample.faces == 0:
        out.append("no face: face the camera")
    elif sample.faces > 1:
        out.append("two faces: only you in view")
    else:
        if sample.turn > checks.max_turn:
            out.append("turn toward the camera")
        if not sample.mouth_in_view:
            out.append("mouth out of the picture")
        if sample.face_luma < checks.min_face_luma:
            out.append("too dark: light your face")
    if loud_dbfs < checks.min_speech_dbfs and not cue.is_pause:
        out.append("too quiet: speak up")
    return out


class TakeDisplay:
    def __init__(
        self, seconds: float, checks: TakeChecks, script: Script | None = None, out: TextIO | None = None
    ) -> None:
        self.seconds = seconds
        self.checks = checks
        self.script = script or Script()
        self.out = out or sys.stdout
        self.live = self.out.isatty()
        self._cue: Cue | None = None
        self._status = ""
        self._verdict = "starting"
        self._elapsed_s = 0
        self.bad_seconds = 0

    def _print(self, line: str) -> None:
        clear = "\r\x1b[K" if self.live else ""
        self.out.write(f"{clear}{line}\n")
        if self.live and self._status:
            self.out.write(self._status)
        self.out.flush()

    def _show_cue(self, t_s: float) -> None:
        cue = self.script.cue_at(t_s)
        if self._cue is None or cue.index != self._cue.index:
            self._cue = cue
            self._print(f"  {cue.shown()}")

    def start(self) -> None:
        self._print(
            f"enroll: recording {self.seconds:g} s. Look at the camera, read each line aloud as it"
            " appears, stay silent at the pauses (Ctrl-C stops)"
        )
        self._show_cue(0.0)

    def second(self, elapsed_s: int, sample: FaceSample | None, loud_dbfs: float) -> None:
        """Called once per recorded second with the latest face sample and that second's level."""
        cue = self._cue or self.script.cue_at(0.0)
        problems = second_problems(sample, loud_dbfs, cue, self.checks)
        self.bad_seconds += bool(problems)
        done = min(elapsed_s / max(self.seconds, 1e-9), 1.0)
        bar = "#" * round(done * BAR_WIDTH) + "-" * (BAR_WIDTH - round(done * BAR_WIDTH))
        verdict = "; ".join(problems) if problems else "ok"
        self._verdict, self._elapsed_s = verdict, elapsed_s
        level = max(loud_dbfs, -99.0)  # digital silence reads -99, not -180
        line = f"[{bar}] {elapsed_s:3d}/{self.seconds:g} s  speech {level:3.0f} dBFS  {verdict}"
        if self.live:
            self._status = line
            self.out.write(f"\r\x1b[K{line}")
            self.out.flush()
        else:
            self._print(line)
        if elapsed_s < self.seconds:
            self._show_cue(float(elapsed_s))

    def finish(self) -> None:
        if self.live and self._status:
            self.out.write("\n")
            self.out.flush()
        self._status = ""

    def overlay(self, image: RgbImage) -> RgbImage:
        """The camera picture mirrored, with the line to read at the bottom and the progress and
        this second's verdict at the top (a new image)."""
        shown = np.ascontiguousarray(image[:, ::-1])
        h, w = shown.shape[:2]
        scale = max(0.4, min(1.0, w / 900))
        status = f"{self._elapsed_s}/{self.seconds:g} s  {self._verdict}"
        draw_lines(shown, [status], 0, scale, (255, 255, 255) if self._verdict == "ok" else (255, 200, 0))
        cue = self._cue or self.script.cue_at(0.0)
        lines = wrap(cue.shown(), w - 16, scale)
        draw_lines(shown, lines, h - (round(32 * scale) + 6) * len(lines) - 8, scale, (255, 255, 255))
        return shown
