"""Wires local sources -> one LipSyncSession -> sinks, for `stablesync run` and `demo`.

Opens the sources' devices and files before anything else, so a camera or microphone that
cannot open stops the run before the model loads or a file is written. Owns every task it
starts; stops on the end of the video, on Ctrl-C/SIGTERM, on a source that
fails for good, or after `max_seconds`. Stopping drains the pipeline (bounded by a timeout) and
always finalises the output file, so what was written stays a valid mp4.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

from stablesync.errors import UserError
from stablesync.export.engine import Engine
from stablesync.realtime.local.handoff import FrameHandOff
from stablesync.realtime.local.sinks import (
    AudioDelayLine,
    FileSink,
    FileSinkConfig,
    VirtualCameraConfig,
    VirtualCameraSink,
)
from stablesync.realtime.local.sinks.pulse import PulseVirtualMic
from stablesync.realtime.local.sinks.virtual_mic import VirtualMicConfig, VirtualMicSink
from stablesync.realtime.local.sources.errors import SourceError
from stablesync.realtime.pipeline.batcher import InferenceBatcher
from stablesync.realtime.pipeline.clock import StreamClock
from stablesync.realtime.pipeline.delivery import DeliveryConfig
from stablesync.realtime.pipeline.frames import AudioChunk, OutputFrame, VideoFrame
from stablesync.realtime.pipeline.session import LipSyncSession, SessionConfig, StageFailed
from stablesync.realtime.pipeline.telemetry import Telemetry

log = logging.getLogger(__name__)


class VideoSource(Protocol):
    async def run(self, emit: Callable[[VideoFrame], Awaitable[None]], clock: StreamClock) -> None: ...


class AudioSource(Protocol):
    async def run(self, emit: Callable[[AudioChunk], Awaitable[None]], clock: StreamClock) -> None: ...


@runtime_checkable
class FormattedAudioSource(Protocol):
    """An audio source that knows the (rate, channels) its chunks' playable audio has."""

    output_format: tuple[int, int]


@runtime_checkable
class OpenableSource(Protocol):
    """A source with a device or a file to open before its `run` (camera, microphone, video file)."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...


async def open_sources(*sources: object) -> None:
    """Opens the devices and reads the files of the sources that have them, in order; when one
    fails (a UserError naming it), those already opened are closed again."""
    try:
        for source in sources:
            if isinstance(source, OpenableSource):
                await source.open()
    except BaseException:
        await close_sources(*sources)
        raise


async def close_sources(*sources: object) -> None:
    """Closes each source's device or file; one whose close raises is logged with its traceback
    and the others are closed all the same."""
    for source in sources:
        if isinstance(source, OpenableSource):
            try:
                await source.close()
            except Exception:  # whatever a device library's close raises: logged, never raised here
                log.exception("closing the %s failed", type(source).__name__)


@dataclass(frozen=True)
class RunConfig:
    session: SessionConfig = field(default_factory=SessionConfig)
    out_path: Path | None = None
    fps: float = 25.0
    virtual_camera: VirtualCameraConfig | None = None
    virtual_mic: VirtualMicConfig | None = None
    create_pulse_mic: bool = False  # Linux: create the `stablesync` null sink + source first
    live_status: bool = True
    max_seconds: float | None = None
    drain_timeout_s: float = 5.0
    on_output: Callable[[OutputFrame], None] | None = None  # sees every frame handed to the sinks
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)  # the audio delay's rule


class RunDetails(TypedDict, total=False):
    """What a run reports beside its telemetry (`--stats-json`'s "run"); each when it applies."""

    virtual_camera: dict[str, Any]  # what the device took (`VirtualCameraSink.negotiated`)
    virtual_mic_samples: int  # samples handed to the virtual microphone
    virtual_mic_gaps: int  # times its stream ran dry mid-stream (each an audible gap)
    audio_delay_ms: float  # the virtual microphone's audio delay at the end
    batches: int  # engine calls
    batched_frames: int  # frames generated in them


@dataclass
class RunResult:
    telemetry: Telemetry
    error: str | None = None
    out_path: Path | None = None
    interrupted: bool = False
    details: RunDetails = field(default_factory=lambda: RunDetails())


class Runner:
    def __init__(
        self, engine: Engine, video: VideoSource, audio: AudioSource, cfg: RunConfig, paced: bool
    ) -> None:
        self.engine, self.video, self.audio, self.cfg, self.paced = engine, video, audio, cfg, paced
        self._stop = asyncio.Event()
        self._error: str | None = None
        self._interrupted = False

    def request_stop(self, interrupted: bool = True) -> None:
        self._interrupted = self._interrupted or interrupted
        self._stop.set()

    def _toggle_bypass(self, session: LipSyncSession) -> None:
        session.bypass = not session.bypass
        session.telemetry.count("bypass_toggled")
        state = "paused: the camera passes through untouched" if session.bypass else "resumed"
        print(f"\nlip-sync {state} (SIGUSR1 toggles)", file=sys.stderr)

    def _fail(self, message: str) -> None:
        if self._error is None:
            self._error = message
        self._stop.set()

    async def _feed(self, name: str, run: Awaitable[None], end: Callable[[], Awaitable[None]]) -> None:
        try:
            await run
        except (SourceError, UserError) as exc:
            self._fail(str(exc))
        except Exception as exc:
            self._fail(f"{name} source failed: {type(exc).__name__}: {exc}")
        finally:
            try:
                await asyncio.shield(end())
            except Exception as exc:  # ending the session's input expects no error: a bug, shown
                log.exception("%s source: ending the session's input failed", name)
                self._fail(f"{name} source: ending the session's input failed: {type(exc).__name__}: {exc}")

    async def run(self) -> RunResult:
        """Opens the sources (devices, files) first: one that cannot open raises its UserError
        before the session starts or anything is written. Then runs until the end or a stop."""
        try:
            await open_sources(self.video, self.audio)
            return await self._run()
        finally:
            await close_sources(self.video, self.audio)

    async def _run(self) -> RunResult:
        loop = asyncio.get_running_loop()
        cfg = self.cfg
        batcher = InferenceBatcher(self.engine)
        session = LipSyncSession(batcher, cfg.session, name="run")
        tel = session.telemetry
        await session.start()  # loads the engine and the tracker before the clock starts
        # the outputs play the input's rate and channels; without a format, the model's audio
        audio_rate_hz, audio_channels = (
            self.audio.output_format
            if isinstance(self.audio, FormattedAudioSource)
            else (self.engine.manifest.mel.sample_rate_hz, 1)
        )
        vcam = VirtualCameraSink(cfg.virtual_camera) if cfg.virtual_camera else None
        pulse_mic: PulseVirtualMic | None = None
        vmic: VirtualMicSink | None = None
        delay_line = AudioDelayLine()
        if cfg.virtual_mic is not None:
            mic_cfg = cfg.virtual_mic
            if cfg.create_pulse_mic:
                pulse_mic = PulseVirtualMic()
                name = await loop.run_in_executor(None, pulse_mic.create)
                if cfg.live_status:
                    print(f"mic out:   pick '{name}' as the microphone in the call app", file=sys.stderr)
                mic_cfg = dataclasses.replace(mic_cfg, pulse_sink=pulse_mic.sink_name)
            mic_cfg = dataclasses.replace(mic_cfg, sample_rate_hz=audio_rate_hz, channels=audio_channels)
            vmic = VirtualMicSink(mic_cfg)
            delay_line.device_latency_ns = int(await vmic.open() * 1e9)
        # the clock starts once the outputs play (the virtual microphone can take 2 s to)
        clock = StreamClock(paced=self.paced)
        file_sink = (
            FileSink(
                cfg.out_path,
                clock.start_ns,
                FileSinkConfig(fps=cfg.fps, sample_rate_hz=audio_rate_hz, channels=audio_channels),
            )
            if cfg.out_path
            else None
        )
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
        if hasattr(signal, "SIGUSR1"):  # pause/resume: the camera passes through untouched
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(signal.SIGUSR1, self._toggle_bypass, session)
                installed.append(signal.SIGUSR1)
        delay_queue: asyncio.Queue[AudioChunk | None] = asyncio.Queue(maxsize=256)
        hand_off = FrameHandOff(session, cfg.delivery, vcam, file_sink, audio_delayed=vmic is not None)

        async def outputs() -> None:
            last_status = 0.0
            while True:
                try:
                    out = await session.next_output()
                except StageFailed as exc:
                    self._fail(str(exc))
                    return
                if out is None:
                    return
                if cfg.on_output is not None:
                    cfg.on_output(out)
                try:
                    await hand_off(out)
                except UserError as exc:
                    self._fail(str(exc))
                    return
                now = loop.time()
                if cfg.live_status and now - last_status >= 1.0:
                    last_status = now
                    print("\r" + tel.status_line(), end="", file=sys.stderr, flush=True)

        async def audio_out() -> None:
            while True:
                chunk = await session.next_audio()
                if file_sink is not None and chunk is not None:
                    try:
                        await file_sink.write_audio(chunk)
                    except UserError as exc:
                        self._fail(str(exc))
                if vmic is not None:
                    if delay_queue.full():
                        delay_queue.get_nowait()
                        tel.count("audio_out_dropped")
                    delay_queue.put_nowait(chunk)
                if chunk is None:
                    return

        async def mic_out() -> None:
            assert vmic is not None
            await delay_line.run(delay_queue.get, lambda: hand_off.delay.applied_ns, vmic.write)

        tasks = {
            loop.create_task(
                self._feed("video", self.video.run(session.submit_video, clock), session.end_video)
            ),
            loop.create_task(
                self._feed("audio", self.audio.run(session.submit_audio, clock), session.end_audio)
            ),
        }
        out_task = loop.create_task(outputs())
        audio_task = loop.create_task(audio_out())
        mic_task = loop.create_task(mic_out()) if vmic is not None else None
        stop_task = loop.create_task(self._stop.wait())
        try:
            await asyncio.wait(
                {out_task, stop_task}, timeout=cfg.max_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            # Stop the sources, let what is in flight come out, then close everything.
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=cfg.drain_timeout_s)
            drained = [t for t in (out_task, audio_task, mic_task) if t is not None]
            _, pending = await asyncio.wait(drained, timeout=cfg.drain_timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=cfg.drain_timeout_s)
        finally:
            stop_task.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            if cfg.live_status:
                print(file=sys.stderr)
            await session.close(cfg.drain_timeout_s)
            await batcher.close(cfg.drain_timeout_s)
            out_path = None
            if file_sink is not None:
                try:
                    out_path = await file_sink.close()
                except UserError as exc:
                    self._fail(str(exc))
            details = RunDetails()
            if vcam is not None:
                details["virtual_camera"] = vcam.negotiated
                await vcam.close()
            if vmic is not None:
                details["virtual_mic_samples"] = vmic.samples_written
                details["audio_delay_ms"] = hand_off.delay.applied_ns / 1e6
                await vmic.close()
                details["virtual_mic_gaps"] = vmic.gaps
            if pulse_mic is not None:
                await loop.run_in_executor(None, pulse_mic.remove)
            details["batches"] = batcher.batches_run
            if batcher.refused_late:
                tel.count("late_refused_by_batcher", batcher.refused_late)
            details["batched_frames"] = batcher.items_run
        return RunResult(tel, self._error, out_path, self._interrupted, details)
