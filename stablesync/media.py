"""Media files through PyAV: read audio and video frames, write WAV and H.264 MP4 (with audio).

No torch. Unreadable, corrupt or truncated files raise `UserError` naming the file; files are
written to a temporary name first and renamed, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import os
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream
from numpy.typing import NDArray

from stablesync.errors import UserError


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.partial{path.suffix}")


def read_audio(path: str | Path, rate_hz: int = 16_000) -> NDArray[np.float32]:
    """The first audio stream of `path` as mono float32 in [-1, 1] at `rate_hz`."""
    path = Path(path)
    chunks: list[NDArray[np.float32]] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise UserError(f"{path}: has no audio stream; expected a file with sound")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate_hz)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1).astype(np.float32))
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot decode audio ({exc.__class__.__name__}: {exc})") from None
    if not chunks:
        raise UserError(f"{path}: the audio stream holds no samples")
    return np.concatenate(chunks)


@contextmanager
def _video_stream(path: Path, doing: str) -> Iterator[tuple[InputContainer, VideoStream]]:
    """The first video stream of `path`, open; a missing stream or an FFmpeg, OS or value error
    raised while it is in use becomes a `UserError` naming the file ("cannot {doing} video")."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path}: has no video stream; expected a video file")
            yield container, container.streams.video[0]
    except UserError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot {doing} video ({exc.__class__.__name__}: {exc})") from None


def video_info(path: str | Path) -> tuple[float, int, int]:
    """(frames per second, width, height) of the first video stream."""
    with _video_stream(Path(path), "open") as (_, stream):
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        return float(rate), int(stream.codec_context.width), int(stream.codec_context.height)


def iter_video_frames(path: str | Path) -> Iterator[tuple[NDArray[np.uint8], float]]:
    """(RGB uint8 (H, W, 3), presentation time in seconds) for every frame of the first video stream.

    The conversion to RGB runs on one thread: PyAV otherwise gives every converted frame a
    swscale context with a pool of one thread per core, started for each frame."""
    with _video_stream(Path(path), "decode") as (container, stream):
        stream.thread_type = "AUTO"
        base = stream.time_base or Fraction(1, 25)
        rate = float(stream.average_rate or 25)
        for index, frame in enumerate(container.decode(stream)):
            pts_s = float(frame.pts * base) if frame.pts is not None else index / rate
            rgb = frame.reformat(format="rgb24", threads=1)
            yield np.asarray(rgb.to_ndarray(), dtype=np.uint8), pts_s


def to_pcm16(samples: NDArray[np.floating]) -> NDArray[np.int16]:  # type: ignore[type-arg]
    return (np.clip(np.asarray(samples, dtype=np.float64), -1.0, 1.0) * 32767.0).round().astype(np.int16)


def write_wav(path: str | Path, samples: NDArray[np.floating], rate_hz: int) -> Path:  # type: ignore[type-arg]
    """Mono PCM16 WAV from float samples in [-1, 1], written atomically."""
    path = Path(path)
    tmp = _temp_path(path)
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(int(rate_hz))
        wav.writeframes(to_pcm16(samples).tobytes())
    tmp.replace(path)
    return path


class Mp4Writer:
    """H.264 (yuv420p) video at a fixed frame rate, optionally with mono AAC audio.

    Frames go in with `write(rgb)`; audio with `close(audio)` or the `audio` argument. The file
    appears under its name only when closed without error.
    """

    def __init__(
        self,
        path: str | Path,
        fps: float,
        size: tuple[int, int],
        audio_rate_hz: int | None = None,
        crf: int = 20,
    ) -> None:
        self.path = Path(path)
        self._tmp = _temp_path(self.path)
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        rate = Fraction(fps).limit_denominator(1001)
        self._video = self._container.add_stream("libx264", rate=rate)
        width, height = size
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}
        self._audio = None
        if audio_rate_hz is not None:
            self._audio = self._container.add_stream("aac", rate=audio_rate_hz, layout="mono")
        self._audio_rate_hz = audio_rate_hz
        self._count = 0
        self._closed = False

    def write(self, frame_rgb: NDArray[np.uint8]) -> None:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
        frame.pts = self._count
        self._count += 1
        for packet in self._video.encode(frame):
            self._container.mux(packet)

    def close(self, audio: NDArray[np.floating] | None = None) -> Path:  # type: ignore[type-arg]
        """Flushes the video, muxes `audio` (mono float at `audio_rate_hz`), and renames into place."""
        for packet in self._video.encode(None):
            self._container.mux(packet)
        stream, rate_hz = self._audio, self._audio_rate_hz
        if stream is not None and rate_hz is not None:
            if audio is None or not len(audio):
                audio = np.zeros(1024, np.float32)
            pcm = to_pcm16(audio).reshape(1, -1)
            block = 1024
            for start in range(0, pcm.shape[1], block):
                frame = av.AudioFrame.from_ndarray(pcm[:, start : start + block], format="s16", layout="mono")
                frame.sample_rate = rate_hz
                frame.pts = start
                for packet in stream.encode(frame):
                    self._container.mux(packet)
            for packet in stream.encode(None):
                self._container.mux(packet)
        self._container.close()
        self._closed = True
        self._tmp.replace(self.path)
        return self.path

    def abort(self) -> None:
        if not self._closed:
            self._container.close()
            self._closed = True
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None:
            self.abort()
