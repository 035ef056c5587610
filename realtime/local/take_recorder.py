"""A guided camera take for `stablesync enroll NAME --camera N --mic DEV`.

The camera and the microphone are the real-time path's own sources (`stablesync.realtime.local.sources`), run
together on one clock. Video is written as it comes to an H.264 mp4 at a fixed 25 fps: each
output instant k/25 s gets the camera frame captured nearest to it (a 30 fps camera drops
frames, a slow one repeats them), so picture and sound keep the times they were captured at.
The sound is the microphone's 16 kHz mono (what the model hears), placed on the same clock
(the median over its chunks of where its first sample lies) and written as a WAV beside the
mp4 (and into it, for playing). Both are written in a folder of the take's own beside the mp4
and moved to their paths only when the take is usable: a refused or failed take removes that
folder, so nothing of it is left and whatever was at those paths before stays. The take starts
with the microphone's first chunk (its stream took up to a second to start here), so the first
line is not read into a microphone that is not recording yet.

While it records it shows the line to read (`stablesync.enroll.script`), a progress bar and,
each second, what is wrong with that second: no face, two faces, the head turned away, the
mouth out of the picture, too dark, too quiet. The face is looked at every half second (the
latest frame, on one worker thread; skipped while a look is still running), with the samples
and the take-level reasons of the file checks (`stablesync.enroll.checks`): the finished take
is refused in one line for the reasons a file is (too short, no face, two faces, too dark,
silence). Where a display exists the camera picture, with the line and the verdict drawn on
it, goes to a preview window (`stablesync.realtime.local.sinks.preview`, never waited for; q or Esc ends the
take). A video file given as the camera is played at 25 fps (the camera source reads files
as fast as it can), which is how the tests drive this path without a webcam.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.enroll.checks import FaceSample, TakeChecks, TakeTally, reasons, sample_face, speech_levels
from stablesync.errors import UserError
from stablesync.media import Mp4Writer, write_wav
from stablesync.realtime.local.take_display import TakeDisplay
from stablesync.realtime.pipeline.clock import StreamClock
from stablesync.realtime.pipeline.frames import NS_PER_S, AudioChunk, RgbImage, VideoFrame

log = logging.getLogger(__name__)


class Source(Protocol):
    async def run(self, emit: Any, clock: StreamClock) -> None: ...


class Preview(Protocol):
    def show(self, image: RgbImage) -> None: ...


@dataclass(frozen=True)
class RecordConfig:
    seconds: float = 90.0
    fps: float = 25.0
    rate_hz: int = 16_000  # the microphone chunks' model samples
    pace: bool = False  # a video file as the camera: wait for each output instant
    no_frame_timeout_s: float = 10.0  # past the take's length with no frame: the camera is silent
    mic_wait_s: float = 3.0  # the take starts with the microphone's first chunk, or after this
    max_pending_writes: int = 25  # frames queued for the encoder before the camera waits
    checks: TakeChecks = field(default_factory=TakeChecks)


@dataclass(frozen=True)
class RecordedTake:
    video: Path  # mp4, 25 fps, with the sound
    audio: Path  # the sound, 16 kHz mono WAV
    duration_s: float
    turned: int  # sampled frames with the head turned away (of `sampled`)
    mouth_hidden: int
    sampled: int


class TakeRecorder:
    def __init__(self, camera: Source, mic: Source, video: Path, audio: Path, cfg: RecordConfig) -> None:
        self.camera, self.mic, self.cfg = camera, mic, cfg
        self.video_path, self.audio_path = video, audio
        self.display = TakeDisplay(cfg.seconds, cfg.checks)
        self.total_slots = round(cfg.seconds * cfg.fps)
        self.slot_ns = NS_PER_S / cfg.fps
        self.tally = TakeTally()
        self.clock = StreamClock()
        self.written = 0
        self._last: tuple[RgbImage, int] | None = None  # (image, capture time from the start)
        self._size: tuple[int, int] | None = None
        self._writer: Mp4Writer | None = None
        self._folder: Path | None = None  # the take's own, beside the mp4: its files until usable
        self._placed: list[Path] = []  # the paths this take's files were moved to
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-take-encode")
        self._looker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stablesync-take-face")
        self._pending: deque[asyncio.Future[None]] = deque()
        self._tracker: Any = None
        self._look: asyncio.Future[FaceSample] | None = None
        self.looks_failed = 0  # face looks that raised (the first logged with its traceback)
        self._next_look_ns = 0
        self._t0_ns: int | None = None  # when the take starts (monotonic): the mic's first chunk
        self._latest: FaceSample | None = None
        self._chunks: list[NDArray[np.float32]] = []
        self._offsets_ns: list[float] = []  # per chunk: where sample 0 lies on the take's clock
        self._samples = 0
        self._done = asyncio.Event()
        self.preview: Preview | None = None  # a window showing the take (never waited for)

    def stop(self) -> None:
        """Ends the take now (the preview window's q or Esc); what was recorded is checked."""
        self._done.set()

    async def record(self) -> RecordedTake:
        """Records until `seconds` of video are written; -> the take, its files in place, or a
        UserError why not (nothing of the take left on disk)."""
        try:
            take = await self._record()
        except BaseException:
            self._encoder.shutdown(wait=True)  # no frame write still running on the files
            self._discard()
            raise
        self._encoder.shutdown(wait=False)
        return take

    async def _record(self) -> RecordedTake:
        from stablesync.face import open_tracker

        loop = asyncio.get_running_loop()
        self._tracker = await loop.run_in_executor(
            self._looker, lambda: open_tracker(max_faces=2, video=False)
        )
        self.clock = StreamClock()
        tasks = [
            asyncio.create_task(self.camera.run(self._on_frame, self.clock)),
            asyncio.create_task(self.mic.run(self._on_audio, self.clock)),
        ]
        done_wait = asyncio.create_task(self._done.wait())
        try:
            await asyncio.wait(
                [*tasks, done_wait],
                timeout=self.cfg.seconds + self.cfg.no_frame_timeout_s + self.cfg.mic_wait_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            for task in [*tasks, done_wait]:
                task.cancel()
            results = await asyncio.gather(*tasks, done_wait, return_exceptions=True)
            write_failure = await self._drain()
            self.display.finish()
        failure = next((r for r in results[:2] if isinstance(r, Exception)), None)  # not cancelled ones
        if isinstance(failure, UserError):
            raise failure
        if failure is not None:
            raise UserError(f"recording stopped: {failure}")
        if isinstance(write_failure, OSError | av.error.FFmpegError):  # the disk, the encoder
            raise UserError(
                f"camera take: cannot write {self.video_path}: {write_failure}"
            ) from write_failure
        if write_failure is not None:
            raise write_failure  # anything else is a bug: its traceback
        return await loop.run_in_executor(self._encoder, self._finish)  # after the last frame

    def _begin(self, t0_ns: int) -> None:
        """The take starts: a microphone stream can take a second to start delivering, and the
        take's first line must not be read into a microphone that is not recording yet."""
        self._t0_ns = t0_ns
        self.display.start()

    async def _on_frame(self, frame: VideoFrame) -> None:
        if self._done.is_set():
            return
        if self._t0_ns is None:
            if frame.capture_ns - self.clock.start_ns < self.cfg.mic_wait_s * NS_PER_S:
                if self.cfg.pace:
                    await asyncio.sleep(self.slot_ns / NS_PER_S)
                return  # waiting for the microphone
            self._begin(frame.capture_ns)  # it is silent: the take's checks will say so
        assert self._t0_ns is not None
        t_ns = frame.capture_ns - self._t0_ns
        image = self._fit(frame.image)
        previous = self._last
        cut_ns = t_ns if previous is None else (previous[1] + t_ns) / 2  # nearer the old or the new
        while self.written < self.total_slots and self.written * self.slot_ns < cut_ns:
            await self._write(image if previous is None else previous[0])
        self._last = (image, t_ns)
        if self.preview is not None:
            self.preview.show(self.display.overlay(image))
        if self._look is None and t_ns >= self._next_look_ns:
            self._next_look_ns = t_ns + round(self.cfg.checks.sample_every_s * NS_PER_S)
            self._start_look(image)
        if self.written >= self.total_slots:
            self._done.set()
        elif self.cfg.pace:  # a file: the next frame is read when its instant is due
            delay_ns = self._t0_ns + self.written * self.slot_ns - time.monotonic_ns()
            if delay_ns > 0:
                await asyncio.sleep(delay_ns / NS_PER_S)

    async def _on_audio(self, chunk: AudioChunk) -> None:
        samples = np.asarray(chunk.samples, np.float32)
        if self._t0_ns is None:
            self._begin(chunk.capture_ns)
        assert self._t0_ns is not None
        start_ns = chunk.capture_ns - self._t0_ns
        self._offsets_ns.append(start_ns - self._samples * NS_PER_S / self.cfg.rate_hz)
        self._chunks.append(samples)
        self._samples += samples.shape[0]

    def _fit(self, image: RgbImage) -> RgbImage:
        h, w = image.shape[:2]
        if self._size is None:
            self._size = (w, h)
            parent, name = self.video_path.parent, self.video_path.name
            self._folder = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
            self._writer = Mp4Writer(
                self._folder / name, self.cfg.fps, self._size, audio_rate_hz=self.cfg.rate_hz
            )
        if (w, h) != self._size:
            return np.asarray(cv2.resize(image, self._size, interpolation=cv2.INTER_AREA), np.uint8)
        return image

    async def _write(self, image: RgbImage) -> None:
        writer = self._writer
        assert writer is not None
        self._pending.append(asyncio.get_running_loop().run_in_executor(self._encoder, writer.write, image))
        self.written += 1
        if self.written % round(self.cfg.fps) == 0:
            self._second(self.written // round(self.cfg.fps) - 1)
        while len(self._pending) > self.cfg.max_pending_writes:
            await self._pending.popleft()

    def _start_look(self, image: RgbImage) -> None:
        tracker = self._tracker

        def look() -> FaceSample:
            return sample_face([f.points for f in tracker.detect(image)], image)

        self._look = asyncio.get_running_loop().run_in_executor(self._looker, look)
        self._look.add_done_callback(self._looked)

    def _looked(self, future: asyncio.Future[FaceSample]) -> None:
        """A look's outcome: its sample counted, or (it raised) the second left unsampled, the
        first failure logged with its traceback and the rest counted (`_drain` says how many)."""
        self._look = None
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self.looks_failed += 1
            if self.looks_failed == 1:
                log.warning("camera take: a face look failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            return
        self._latest = future.result()
        self.tally.add(self._latest, self.cfg.checks)

    def _second(self, second: int) -> None:
        """Shows how the second just written went (the latest face sample, its sound's level)."""
        audio = self._audio_between(second * self.cfg.rate_hz, (second + 1) * self.cfg.rate_hz)
        loud_dbfs, _ = speech_levels(audio, self.cfg.rate_hz)
        self.display.second(second + 1, self._latest, loud_dbfs)

    def _audio_offset(self) -> int:
        """Samples to put before the microphone's first (negative: to drop) to start at 0."""
        if not self._offsets_ns:
            return 0
        return round(float(np.median(self._offsets_ns)) * self.cfg.rate_hz / NS_PER_S)

    def _audio_between(self, start: int, stop: int) -> NDArray[np.float32]:
        """The take's sound from sample `start` to `stop` (zeros where none was recorded)."""
        whole = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
        out = np.zeros(stop - start, np.float32)
        first = start - self._audio_offset()  # index into `whole`
        lo, hi = max(first, 0), min(first + (stop - start), whole.shape[0])
        if hi > lo:
            out[lo - first : hi - first] = whole[lo:hi]
        return out

    async def _drain(self) -> BaseException | None:
        """Waits for the running face look and every queued frame write, then closes the
        tracker; -> the first write's failure (None: all written)."""
        if self._look is not None:
            await asyncio.wait([self._look])  # its outcome goes to `_looked`
        if self.looks_failed > 1:
            log.warning("camera take: %d face looks failed in all", self.looks_failed)
        failure: BaseException | None = None
        if self._pending:
            await asyncio.wait(self._pending)
            failures = [w.exception() for w in self._pending if not w.cancelled()]  # each one read
            failure = next((exc for exc in failures if exc is not None), None)
            self._pending.clear()
        tracker = self._tracker
        if tracker is not None:
            await asyncio.get_running_loop().run_in_executor(self._looker, tracker.close)
        self._looker.shutdown(wait=False)
        return failure

    def _finish(self) -> RecordedTake:
        """Checks the take; a usable one's files are written and moved to their paths."""
        duration_s = self.written / self.cfg.fps
        audio = self._audio_between(0, round(duration_s * self.cfg.rate_hz))
        summary = self.tally.summary(duration_s, self.written, audio)
        problems = reasons(summary, self.cfg.checks)
        if problems:
            raise UserError(f"camera take: unusable take: {'; '.join(problems)}")
        video, wav = self._write_files(audio)
        for written, path in ((video, self.video_path), (wav, self.audio_path)):
            shutil.move(written, path)
            self._placed.append(path)
        video.parent.rmdir()  # the take's folder, empty now
        return RecordedTake(
            self.video_path,
            self.audio_path,
            duration_s,
            self.tally.turned,
            self.tally.mouth_hidden,
            self.tally.sampled,
        )

    def _write_files(self, audio: NDArray[np.float32]) -> tuple[Path, Path]:
        """Closes the mp4 with `audio` in it and writes the WAV, both in the take's folder."""
        writer, folder = self._writer, self._folder
        assert writer is not None and folder is not None  # a take with no frame is too short
        return writer.close(audio), write_wav(folder / self.audio_path.name, audio, self.cfg.rate_hz)

    def _discard(self) -> None:
        """Removes what this take wrote: its folder and any file it moved to its paths."""
        writer = self._writer
        if writer is not None:
            try:
                writer.abort()  # closes the container; its file goes with the folder
            except (OSError, av.error.FFmpegError) as exc:  # the disk or encoder that refused it
                log.warning("camera take: closing the refused mp4 failed: %s: %s", type(exc).__name__, exc)
        for path in self._placed:
            path.unlink(missing_ok=True)
        if self._folder is not None:
            try:
                shutil.rmtree(self._folder)
            except OSError as exc:
                log.warning("camera take: cannot remove %s: %s", self._folder, exc)
