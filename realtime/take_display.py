"""What a camera take shows in the terminal: the line to read, a progress bar, and each second
what is wrong with it (on a terminal the bar is one line redrawn in place; otherwise, e.g. in a
log, one line per second)."""

from __future__ import annotations

import sys
from typing import TextIO

from stablesync.enroll.checks import FaceSample, TakeChecks
from stablesync.enroll.script import Cue, Script

BAR_WIDTH = 30


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
        line = f"[{bar}] {elapsed_s:3d}/{self.seconds:g} s  speech {loud_dbfs:4.0f} dBFS  {verdict}"
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
