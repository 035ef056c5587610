"""The block `run`, `demo` and `serve` print on stderr before they start: what was opened (the
video and audio inputs, the model and its backend, the face tracker) and where the output goes
(the file, the virtual camera and microphone and what to pick in the call app, the preview,
the page's address), one labelled line each. One implementation, so the three say the same
things the same way; the commands only choose which lines apply."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from stablesync.export.engine import Engine
from stablesync.realtime.local.sources import CameraSource, ImageSource, MicSource, VideoFileSource

LABEL_WIDTH = 10  # "video in:" padded: the texts line up


class StartUpBlock:
    def __init__(self) -> None:
        self._lines: list[str] = []

    def add(self, label: str, text: str) -> StartUpBlock:
        self._lines.append(f"{label + ':':<{LABEL_WIDTH}} {text}")
        return self

    def video(self, source: object, path: Path | None = None) -> StartUpBlock:
        if isinstance(source, ImageSource):
            h, w = source.image.shape[:2]
            return self.add("video in", f"photo {path} ({w}x{h}, {source.fps:g} fps)")
        if isinstance(source, CameraSource):
            size = f"{source.width}x{source.height} at {source.fps:g} fps"
            return self.add("video in", f"camera {source.device} ({size})")
        if isinstance(source, VideoFileSource):
            return self.add("video in", f"video {source.path} (looped)")
        return self.add("video in", type(source).__name__)

    def audio(self, source: object, name: str | Path | None = None) -> StartUpBlock:
        if isinstance(source, MicSource):
            rate, channels = source.output_format
            return self.add("audio in", f"microphone {name or 'default'} ({rate} Hz, {channels} ch)")
        return self.add("audio in", f"audio {name}")

    def engine(self, engine: Engine | None) -> StartUpBlock:
        """The model and backend (None: no model, video passed through), and the tracker."""
        from stablesync.face import describe_trackers

        if engine is None:
            return self.add("model", "none: --backend passthrough returns the video untouched")
        graph = getattr(engine, "frame_graph", "frame")
        backend = getattr(engine, "backend", "engine")
        self.add("model", f"{engine.manifest.preset} on {backend} ({graph})")
        return self.add("tracking", describe_trackers())

    def file(self, out: Path | None) -> StartUpBlock:
        if out is not None:
            from stablesync.realtime.local.sinks.file import partial_path

            self.add("file", f"{out} (written as {partial_path(out).name} until done)")
        return self

    def pause_signal(self) -> StartUpBlock:
        if hasattr(signal, "SIGUSR1"):
            text = f"kill -USR1 {os.getpid()} passes the camera through untouched (again: resumes)"
            self.add("pause", text)
        return self

    def text(self) -> str:
        return "\n".join(self._lines)
