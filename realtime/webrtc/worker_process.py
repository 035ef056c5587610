"""`serve`'s sessions each in a worker process (`session_worker.py`) of their own.

In one process, two sessions wait on each other for the interpreter lock (RESULTS.md, issue 20:
two sessions on 2 cores 81-93 % lip-synced at glass-to-glass p95 500-590 ms; the same two as two
processes 99.7-100 % at 305-323 ms). So on onnxruntime's CPU backend `serve` keeps aiortc, HTTP
and the stats here and runs each session's decode-to-encode pipeline in a worker: the decoded
picture goes over as I420 planes, the processed one comes back the same way (a frame that passed
through comes back as a reference to the one sent, which is then sent untouched).

Faults degrade, never end the call: until a session's worker has loaded (`--spares` of them are
kept loaded for the next sessions), and after one died, failed or hung (held a frame `STALL_GRACE_S` past its
deadline: it is killed), frames pass through ("warmup", then "error") while a new worker starts, up to
`MAX_RESTARTS` times a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import Awaitable, Callable

import av
import numpy as np

from stablesync.export.engine import Engine
from stablesync.realtime.pipeline.frames import NS_PER_S, DeliveredMode, OutputFrame, VideoFrame
from stablesync.realtime.pipeline.slots import Channel
from stablesync.realtime.pipeline.tasks import cancel_and_wait
from stablesync.realtime.pipeline.telemetry import Telemetry
from stablesync.realtime.webrtc.lipsync import pipeline_figures
from stablesync.realtime.webrtc.processing import FloatArray, ProcessedFrame, SessionPipeline
from stablesync.realtime.webrtc.stats import PipelineFigures
from stablesync.realtime.webrtc.worker_wire import (
    Delivered,
    FrameMeta,
    Kind,
    VideoMeta,
    WireError,
    WorkerSpec,
    i420_frame,
    i420_planes,
    pack,
    read_message,
)

log = logging.getLogger(__name__)
MAX_RESTARTS = 3  # new workers a session gets after its first failed; then it passes through
CLOSE_TIMEOUT_S = 1.0  # a worker that has not exited this long after its stdin closed is killed
WIRE_BACKLOG_BYTES = 8 << 20  # unread by the worker beyond this: a new frame is dropped, not queued
OUTPUT_FRAMES = 4  # processed frames waiting for the sender (drop-oldest)
# a worker still holding a frame this long past its deadline has hung (a frame comes back,
# lip-synced or passed through late, by its deadline): it is killed and replaced like one that died
STALL_GRACE_S = 0.5
NO_PIXELS = np.zeros((0, 0, 3), np.uint8)  # an OutputFrame here carries figures; pixels stay in the worker


class WorkerProcess:
    """One started worker: its SPEC sent, loading until it says READY."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc
        assert proc.stdin is not None and proc.stdout is not None
        self.stdin: asyncio.StreamWriter = proc.stdin
        self.stdout: asyncio.StreamReader = proc.stdout

    @classmethod
    async def start(cls, spec: WorkerSpec) -> WorkerProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "stablesync.realtime.webrtc.session_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(proc)
        worker.send(Kind.SPEC, spec)
        return worker

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def backlog_bytes(self) -> int:
        return self.stdin.transport.get_write_buffer_size()

    def send(self, kind: Kind, meta: object = None, payload: bytes = b"") -> None:
        """Queues a message (never waits); a worker already gone is noticed by its reader."""
        if not self.stdin.is_closing():
            self.stdin.writelines(pack(kind, meta, payload))

    async def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Closes its stdin (it finishes and exits), reading and discarding what it still
        writes; kills it if it has not exited within `timeout_s`."""
        self.stdin.close()

        async def drain_and_wait() -> None:
            with contextlib.suppress(ConnectionError):
                while await self.stdout.read(1 << 16):
                    pass
            await self._proc.wait()

        try:
            await asyncio.wait_for(drain_and_wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            await self._proc.wait()

    def kill(self) -> None:
        """Ends it at once (a stopped or hung process too); its reader then sees the end."""
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode


WorkerStarter = Callable[[], Awaitable[WorkerProcess]]


class WorkerSession:
    """A `SessionPipeline` whose frames are processed in a worker process."""

    def __init__(self, worker: WorkerProcess, start_worker: WorkerStarter, spec: WorkerSpec) -> None:
        self.telemetry = Telemetry()
        cfg = spec.session
        self.budget_ms: float | None = cfg.budget_ms if cfg.realtime else None
        self._stall_ns = int((cfg.budget_ms / 1000 + STALL_GRACE_S) * NS_PER_S)
        self._start_worker = start_worker
        self._out: Channel[ProcessedFrame] = Channel(OUTPUT_FRAMES, blocking=False)
        self._sent: dict[int, tuple[av.VideoFrame, int]] = {}  # seq -> (frame, capture_ns) in the worker
        self._seq = 0
        self._worker: WorkerProcess | None = worker
        self._ready = False
        self._without: DeliveredMode = "warmup"  # the mode of frames passed through here
        self._ended = False
        self._restarts = 0
        self._reader = asyncio.get_running_loop().create_task(self._read(worker), name="worker-reader")

    @property
    def worker_pid(self) -> int | None:
        """The process serving this session now (None while a new one is being started)."""
        return self._worker.pid if self._worker is not None else None

    # -- from the worker ---------------------------------------------------------------------
    async def _read(self, worker: WorkerProcess) -> None:
        reason = f"worker {worker.pid} exited"
        try:
            while (message := await read_message(worker.stdout)) is not None:
                kind, meta, payload = message
                if kind is Kind.READY:
                    self._ready = True
                elif kind is Kind.FRAME:
                    self._frame(meta, payload)
                elif kind is Kind.DONE:
                    self._out.end_nowait()
                    return
                elif kind is Kind.FAILED:
                    reason = f"worker {worker.pid}: {meta}"
                    break
        except (WireError, ConnectionError) as exc:
            reason = f"worker {worker.pid}: {exc}"
        await self._lost(worker, reason)

    def _frame(self, meta: FrameMeta, payload: bytes) -> None:
        for seq in [s for s in self._sent if s < meta.seq]:  # replaced in the worker (counted there)
            del self._sent[seq]
        sent = self._sent.pop(meta.seq, None)
        for name, n in meta.counts.items():
            self.telemetry.count(name, n)
        if sent is None:
            return
        original, capture_ns = sent
        frame = original if meta.passthrough else i420_frame(payload, meta.width, meta.height)
        figures = VideoFrame(NO_PIXELS, capture_ns, 0, meta.seq)
        output = OutputFrame(figures, NO_PIXELS, meta.mode, meta.stages, meta.deadline_ns)
        self._hand_on(ProcessedFrame(frame, capture_ns, meta.mode, output))

    def _hand_on(self, frame: ProcessedFrame) -> None:
        if self._out.put_nowait(frame) is not None:
            self.telemetry.count("frames_dropped")

    async def _lost(self, worker: WorkerProcess, reason: str) -> None:
        """The worker failed or died: frames pass through from now on; a new worker is started
        unless the stream has ended or the session used up its restarts."""
        self._ready = False
        self._worker = None
        self._without = "error"
        in_flight = list(self._sent.values())
        self._sent.clear()
        if in_flight:  # the newest of the frames it had goes out untouched, the rest are dropped
            self.telemetry.count("frames_dropped", len(in_flight) - 1)
            self._hand_on(ProcessedFrame(*in_flight[-1], "error"))
        await worker.close()
        if self._ended:
            self._out.end_nowait()
            return
        if self._restarts >= MAX_RESTARTS:
            note = f"{reason}; no more restarts: video passes through"
            self.telemetry.note(note)
            log.error("%s", note)
            return
        self._restarts += 1
        note = f"{reason}; passing video through while worker {self._restarts + 1} starts"
        self.telemetry.note(note)
        log.warning("%s (rc %s)", note, worker.returncode)
        fresh = await self._start_worker()
        self._worker = fresh
        self._reader = asyncio.get_running_loop().create_task(self._read(fresh), name="worker-reader")

    # -- SessionPipeline ---------------------------------------------------------------------
    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        if self._ready and self._worker is not None:
            self._worker.send(Kind.AUDIO, capture_ns, np.ascontiguousarray(samples, np.float32).tobytes())

    async def push_video(self, frame: av.VideoFrame, capture_ns: int) -> None:
        self.telemetry.count("frames_in")
        worker = self._worker
        if not self._ready or worker is None or frame.width % 2 or frame.height % 2:
            self._hand_on(ProcessedFrame(frame, capture_ns, self._without))
            return
        if self._sent and capture_ns - next(iter(self._sent.values()))[1] > self._stall_ns:
            worker.kill()  # hung: its reader takes it from there
            self._hand_on(ProcessedFrame(frame, capture_ns, "error"))
            return
        if worker.backlog_bytes > WIRE_BACKLOG_BYTES:
            self.telemetry.count("frames_dropped")  # the worker is not reading: no backlog here
            return
        seq, self._seq = self._seq, self._seq + 1
        self._sent[seq] = (frame, capture_ns)
        meta = VideoMeta(seq, capture_ns, frame.width, frame.height, frame.colorspace, frame.color_range)
        worker.send(Kind.VIDEO, meta, i420_planes(frame))

    async def next_frame(self) -> ProcessedFrame | None:
        return await self._out.get()

    def delivered(self, frame: ProcessedFrame, handed_ns: int, audio_delay_ns: int | None) -> None:
        if frame.output is None:
            self.telemetry.record_delivery(frame.capture_ns, frame.mode, handed_ns, audio_delay_ns)
            return
        self.telemetry.record_output(frame.output, handed_ns, audio_delay_ns)
        if self._worker is not None and self._ready:
            self._worker.send(Kind.DELIVERED, Delivered(frame.output.frame.index, handed_ns, audio_delay_ns))

    def figures(self) -> PipelineFigures:
        return pipeline_figures(self.telemetry)

    async def end(self) -> None:
        self._ended = True
        if self._worker is not None and self._ready:
            self._worker.send(Kind.END)
        else:
            self._out.end_nowait()

    async def aclose(self) -> None:
        self._ended = True
        await cancel_and_wait([self._reader], CLOSE_TIMEOUT_S, log, "worker session")
        worker, self._worker = self._worker, None
        if worker is not None:
            await worker.close()
        self._out.end_nowait()


class WorkerPipelines:
    """The `PipelineFactory` of sessions in worker processes, `spares` kept loading for the next
    sessions (peers that join within a second of each other each find one loaded)."""

    def __init__(self, spec: WorkerSpec, engine: Engine | None = None, spares: int = 1) -> None:
        if spares < 0:
            raise ValueError(f"spares {spares}: expected 0 or more")
        self.spec = spec
        self.backend = spec.backend
        self.engine = engine  # the front's own copy: checked the weights, describes the model
        self.spares = spares
        self._spares: deque[asyncio.Task[WorkerProcess]] = deque()
        self.closed = False  # after `aclose`: no spare, none started again

    def warm(self) -> None:
        """Starts spares (from a running loop) until `spares` are loaded or loading, so the next
        sessions find them ready."""
        while len(self._spares) < self.spares and not self.closed:
            self._spares.append(asyncio.get_running_loop().create_task(WorkerProcess.start(self.spec)))

    async def take_worker(self) -> WorkerProcess:
        """The spare started first (or a new worker when none is left), and a new spare started."""
        spare = self._spares.popleft() if self._spares else None
        worker = await asyncio.shield(spare) if spare is not None else await WorkerProcess.start(self.spec)
        self.warm()
        return worker

    async def open_session(self, session_id: str) -> SessionPipeline:
        del session_id
        return WorkerSession(await self.take_worker(), self.take_worker, self.spec)

    async def aclose(self) -> None:
        self.closed = True
        spares, self._spares = list(self._spares), deque()
        for spare in spares:
            try:
                worker = await spare
            except OSError as exc:  # it never started: nothing to close
                log.warning("a spare worker had not started: %s", exc)
                continue
            await worker.close()
