"""mp4 output: the lip-synced video (H.264) and the audio (AAC), muxed in sync with PyAV.

Both streams are stamped on the run's capture time line (`capture_ns - start_ns`): a frame
and the sound captured at the same instant share a timestamp, so the file plays in sync
whatever latency the live pipeline had (the live outputs delay the audio instead). Dropped
frames leave gaps that the variable frame timing keeps. Audio holes are filled with silence.
The file is written to `NAME.partial.mp4` (for `NAME.mp4`) and renamed when closed, so an
interrupted run never leaves a half-written file under the requested name; `close` always
finalises what was written. Nothing is created before the first frame arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from stablesync.errors import UserError
from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk, RgbImage

VIDEO_TIME_BASE = Fraction(1, 90_000)
_T = TypeVar("_T")


def partial_path(path: Path) -> Path:
    """Where the file is written until it is finalised: NAME.partial.mp4 for NAME.mp4."""
    return path.with_name(path.stem + ".partial" + path.suffix)


@dataclass(frozen=True)
class FileSinkConfig:
    fps: float = 25.0
    sample_rate_hz: int = 16_000  # the audio track's: the input's (`AudioChunk.playable`)
    channels: int = 1
    audio_jitter_ms: float = 15.0  # audio stamped this close to where it follows on is written on
    crf: int = 20
    audio_bitrate: int = 64_000


class FileSink:
    def __init__(self, path: str | Path, start_ns: int, cfg: FileSinkConfig = FileSinkConfig()) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".mov", ".mkv"):
            raise UserError(f"{self.path}: output must end in .mp4 (or .mov/.mkv)")
        if not self.path.parent.exists():
            raise UserError(f"{self.path}: folder {self.path.parent} does not exist")
        self.cfg = cfg
        self.start_ns = start_ns
        self.partial = partial_path(self.path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-file")
        self._container: Any = None
        self._video: Any = None
        self._audio: Any = None
        self._size: tuple[int, int] | None = None
        self._pending_audio: list[AudioChunk] = []
        self._last_video_pts = -1
        self._audio_samples_written = 0
        self.frames_written = 0

    # --- called from the event loop ----------------------------------------------------

    async def write_video(self, image: RgbImage, capture_ns: int) -> None:
        await self._on_file_thread(self._write_video, image, capture_ns)

    async def write_audio(self, chunk: AudioChunk) -> None:
        await self._on_file_thread(self._write_audio, chunk)

    async def close(self) -> Path | None:
        """Finalises the file; returns its path (None when nothing was written)."""
        try:
            return await self._on_file_thread(self._close)
        finally:
            self._executor.shutdown(wait=True)

    async def _on_file_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Runs `fn` on the file thread; PyAV's errors (OSErrors: no permission, a full disk, a
        vanished folder) become a one-line UserError naming the file."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except OSError as exc:
            raise UserError(f"{self.path}: cannot write it ({exc.strerror or exc})") from exc

    # --- on the file thread ------------------------------------------------------------

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(
            str(self.partial), mode="w", format="mp4" if self.path.suffix == ".mp4" else None
        )
        video = self._container.add_stream("libx264", rate=round(self.cfg.fps))
        video.width, video.height = width, height
        video.pix_fmt = "yuv420p"
        video.time_base = VIDEO_TIME_BASE
        video.codec_context.time_base = VIDEO_TIME_BASE
        video.options = {"preset": "veryfast", "tune": "zerolatency", "crf": str(self.cfg.crf)}
        audio = self._container.add_stream("aac", rate=self.cfg.sample_rate_hz)
        audio.layout = "mono" if self.cfg.channels == 1 else "stereo"
        audio.bit_rate = self.cfg.audio_bitrate
        self._video, self._audio, self._size = video, audio, (width, height)
        for chunk in self._pending_audio:
            self._write_audio(chunk)
        self._pending_audio.clear()

    def _write_video(self, image: RgbImage, capture_ns: int) -> None:
        import av

        if self._container is None:
            self._open(image.shape[1] - image.shape[1] % 2, image.shape[0] - image.shape[0] % 2)
        assert self._size is not None
        w, h = self._size
        if image.shape[1] != w or image.shape[0] != h:
            import cv2

            image = np.asarray(cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA), dtype=np.uint8)
        pts = max(round((capture_ns - self.start_ns) * VIDEO_TIME_BASE.denominator / NS_PER_S), 0)
        if pts <= self._last_video_pts:
            pts = self._last_video_pts + 1
        self._last_video_pts = pts
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        for packet in self._video.encode(frame):
            self._container.mux(packet)
        self.frames_written += 1

    def _write_audio(self, chunk: AudioChunk) -> None:
        import av

        if self._container is None:
            if len(self._pending_audio) < 2000:  # ~40 s of 20 ms chunks before the first frame
                self._pending_audio.append(chunk)
            return
        rate, channels = self.cfg.sample_rate_hz, self.cfg.channels
        samples = chunk.playable().converted(rate, channels)
        start = round((chunk.capture_ns - self.start_ns) * rate / NS_PER_S)
        gap = start - self._audio_samples_written
        if abs(gap) <= self.cfg.audio_jitter_ms * rate / 1000:  # capture-time jitter: follow on
            gap = 0
        if gap > 0:  # a hole in the input (or the stream started late): silence
            samples = np.concatenate([np.zeros((gap, channels), dtype=np.float32), samples])
        elif gap < 0:  # overlap: drop what was already written
            samples = samples[-gap:]
        if samples.shape[0] == 0:
            return
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(np.clip(samples, -1, 1), dtype=np.float32).reshape(1, -1),
            format="flt",
            layout="mono" if channels == 1 else "stereo",
        )
        frame.sample_rate = rate
        frame.pts, frame.time_base = self._audio_samples_written, Fraction(1, rate)
        self._audio_samples_written += samples.shape[0]
        for packet in self._audio.encode(frame):
            self._container.mux(packet)

    def _close(self) -> Path | None:
        if self._container is None:
            return None
        try:
            try:
                for packet in self._video.encode(None):
                    self._container.mux(packet)
                for packet in self._audio.encode(None):
                    self._container.mux(packet)
            finally:
                self._container.close()
                self._container = None
        except OSError:
            with contextlib.suppress(OSError):  # unfinishable: leave no partial file behind
                self.partial.unlink(missing_ok=True)
            raise
        self.partial.replace(self.path)
        return self.path
