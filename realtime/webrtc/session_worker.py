"""A WebRTC session's lip-sync pipeline in a process of its own: `python -m
stablesync.realtime.webrtc.session_worker`, started by `serve` (worker_process.py), one session
per process.

Two sessions in one process wait on each other for the interpreter lock: every numpy and OpenCV
call releases it and has to win it back from the other session's stages and aiortc (two sessions
on the 2-core Xeon: the compositing thread 7.7 ms of CPU in 30 ms of wall time a frame, 72-76
lock hand-overs; RESULTS.md, issue 20). Here the session runs `LipSyncPipeline` as `serve` would
in-process, with its own engine (one onnxruntime thread) and batcher, and talks to the front
over stdin/stdout (worker_wire.py). It ignores SIGINT (the front shuts it down) and exits when its
stdin closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections import Counter
from typing import Any

from stablesync.realtime.pipeline.telemetry import Telemetry
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

log = logging.getLogger("stablesync.session_worker")
# counted by the front at the hand-off itself (Telemetry.record_delivery) or on its side
FRONT_COUNTS = ("frames_in", "frames_out", "over_budget")


def changed_counts(telemetry: Telemetry, sent: Counter[str]) -> dict[str, int]:
    """The session's counts that moved since `sent` (updated), without those the front keeps."""
    delta: dict[str, int] = {}
    for name, value in telemetry.counts.items():
        if name in FRONT_COUNTS or name.startswith("mode_") or value == sent[name]:
            continue
        delta[name] = value - sent[name]
        sent[name] = value
    return delta


class WorkerSide:
    """One session, fed from the front's messages, its frames written back."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._pipeline: Any = None  # LipSyncPipeline once loaded
        self._factory: Any = None
        self._in_flight: dict[int, Any] = {}  # seq -> ProcessedFrame handed out, not yet delivered
        self._sent_counts: Counter[str] = Counter()

    async def _send(self, kind: Kind, meta: Any = None, payload: bytes = b"") -> None:
        self._writer.writelines(pack(kind, meta, payload))
        await self._writer.drain()

    async def load(self, spec: WorkerSpec) -> None:
        from stablesync.realtime.pipeline.loading import open_serve_engine
        from stablesync.realtime.webrtc.lipsync import LipSyncFactory

        engine = await asyncio.to_thread(open_serve_engine, spec.weights, spec.backend)
        self._factory = LipSyncFactory(engine, spec.session, convert_threads=1)
        self._pipeline = await self._factory.open_session(spec.name)
        await self._send(Kind.READY, f"{engine.manifest.preset} on {engine.backend}")

    async def outputs(self) -> None:
        from stablesync.realtime.pipeline.session import StageFailed

        pipeline = self._pipeline
        while True:
            try:
                frame = await pipeline.next_frame()
            except StageFailed as exc:
                await self._send(Kind.FAILED, str(exc))
                return
            if frame is None:
                await self._send(Kind.DONE)
                return
            out = frame.output
            seq = out.frame.index
            passthrough = frame.frame is out.frame.source
            meta = FrameMeta(
                seq,
                out.mode,
                out.stages,
                out.deadline_ns,
                passthrough,
                frame.frame.width,
                frame.frame.height,
                changed_counts(pipeline.telemetry, self._sent_counts),
            )
            self._in_flight[seq] = frame
            await self._send(Kind.FRAME, meta, b"" if passthrough else i420_planes(frame.frame))

    def delivered(self, note: Delivered) -> None:
        frame = self._in_flight.pop(note.seq, None)
        for seq in [s for s in self._in_flight if s < note.seq]:  # the front dropped them
            del self._in_flight[seq]
        if frame is not None:
            self._pipeline.delivered(frame, note.handed_ns, note.audio_delay_ns)

    async def feed(self, reader: asyncio.StreamReader) -> None:
        """Hands the front's media to the pipeline until END or the end of stdin."""
        import numpy as np

        pipeline = self._pipeline
        while (message := await read_message(reader)) is not None:
            kind, meta, payload = message
            if kind is Kind.VIDEO:
                v: VideoMeta = meta
                frame = i420_frame(payload, v.width, v.height, v.colorspace, v.color_range)
                await pipeline.push_video(frame, v.capture_ns, index=v.seq)
            elif kind is Kind.AUDIO:
                pipeline.push_audio(np.frombuffer(payload, dtype=np.float32), int(meta))
            elif kind is Kind.DELIVERED:
                self.delivered(meta)
            elif kind is Kind.END:
                break
        await pipeline.end()

    async def close(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.aclose()
        if self._factory is not None:
            await self._factory.aclose()


async def _pipes() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """stdin as a stream reader; the original stdout as a stream writer, with fd 1 pointed at
    stderr so nothing a library prints can land inside a message."""
    loop = asyncio.get_running_loop()
    wire_fd = os.dup(1)
    os.dup2(2, 1)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", 0))
    transport, protocol = await loop.connect_write_pipe(
        lambda: asyncio.StreamReaderProtocol(asyncio.StreamReader()), os.fdopen(wire_fd, "wb", 0)
    )
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


async def serve_one_session() -> int:
    reader, writer = await _pipes()
    side = WorkerSide(writer)
    try:
        first = await read_message(reader)
        if first is None or first[0] is not Kind.SPEC:
            return 0  # the front closed a spare it no longer needed
        try:
            await side.load(first[1])
        except Exception as exc:  # reported to the front, which passes the video through
            log.exception("loading the session failed")
            await side._send(Kind.FAILED, f"loading the session failed: {type(exc).__name__}: {exc}")
            return 1
        outputs = asyncio.create_task(side.outputs(), name="outputs")
        try:
            await side.feed(reader)
            await outputs
        except (WireError, ConnectionError) as exc:
            log.warning("the front's wire broke: %s", exc)
            outputs.cancel()
        return 0
    finally:
        await side.close()
        writer.close()


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the front decides
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s worker %(process)d: %(message)s"
    )
    return asyncio.run(serve_one_session())


if __name__ == "__main__":
    sys.exit(main())
