"""Keeps third-party libraries' log noise off the terminal of the live commands.

mediapipe (absl and TensorFlow Lite lines on every start), OpenCV's camera probes and ALSA's
underrun reports write straight to file descriptor 2 from C code, where Python's logging cannot
reach them. `StderrFilter()` puts a pipe in place of fd 2 and a thread that copies every line
to the real stderr except those that match the known noise (`--verbose` skips the filter). The
thread blocks on the pipe; it never polls. Python's own errors and tracebacks pass unchanged.
"""

from __future__ import annotations

import os
import re
import sys
import threading

# Line starts of the libraries' own logging, never of stablesync's.
NOISE = re.compile(
    rb"^(?:[WIE]\d{4} [\d:. ]+\s*\d+ \w+\.cc:\d+\]"  # absl/glog: W0000 00:00:... file.cc:123]
    rb"|WARNING: All log messages before absl::InitializeLog"
    rb"|INFO: Created TensorFlow Lite"
    rb"|\[ ?(?:WARN|INFO|ERROR):\d*@?[\d.]*\]? ?.*(?:VIDEOIO|videoio|global)"  # OpenCV's probes
    rb"|ALSA lib "
    rb"|Expression 'alsa_\w+"  # PortAudio's ALSA host API complaints
    rb")"
)


class StderrFilter:
    """fd 2 through the noise filter until `close()` (which lets every line written so far out)."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self._original_fd = os.dup(2)
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self.dropped = 0
        self._thread = threading.Thread(target=self._copy, args=(read_fd,), daemon=True, name="stderr-filter")
        self._thread.start()

    def _copy(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._write(line + b"\n")
            if pending:
                self._write(pending)

    def _write(self, line: bytes) -> None:
        if NOISE.match(line):
            self.dropped += 1
        else:
            os.write(self._original_fd, line)

    def close(self, timeout_s: float = 2.0) -> None:
        """Puts the real stderr back; the pipe then ends and the lines still in it are copied."""
        sys.stderr.flush()
        os.dup2(self._original_fd, 2)
        self._thread.join(timeout_s)
