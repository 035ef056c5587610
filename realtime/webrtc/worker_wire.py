"""The wire between `serve` and a session's worker process (`session_worker.py`).

The front process writes to the worker's stdin, the worker answers on its stdout (everything
else it prints goes to stderr). A message is a header (`HEADER`: kind, metadata length, payload
length), the metadata pickled (both ends are this program, started by it) and a raw payload: a
picture's I420 planes or audio samples, which are the bulk and are never pickled.

Front -> worker: `SPEC` first (what to load), then `VIDEO`, `AUDIO`, `DELIVERED` (a frame's
hand-off, which the session's late-frame policy reads) and `END`. Worker -> front: `READY` once
the engine and tracker are loaded, a `FRAME` for each processed frame in capture order, then
`DONE` when the stream ended, or `FAILED` when the worker cannot go on.
"""

from __future__ import annotations

import asyncio
import enum
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from stablesync.realtime.pipeline.frames import FrameMode, StageTimes
from stablesync.realtime.pipeline.session_config import SessionConfig

HEADER = struct.Struct("<BII")  # kind, metadata bytes, payload bytes
MAX_MESSAGE_BYTES = 64 << 20  # a 4K picture's planes are 12 MiB; anything larger is a broken wire


class Kind(enum.IntEnum):
    SPEC = 1  # WorkerSpec
    VIDEO = 2  # VideoMeta + I420 planes
    AUDIO = 3  # capture_ns + float32 samples (16 kHz mono)
    DELIVERED = 4  # Delivered
    END = 5  # no more video
    READY = 10  # the engine's description
    FRAME = 11  # FrameMeta + I420 planes (none when the frame passed through)
    FAILED = 12  # why the worker cannot go on
    DONE = 13  # the stream ended


class WireError(RuntimeError):
    """A message that breaks the protocol (a worker that died mid-message, or a bug)."""


@dataclass(frozen=True)
class WorkerSpec:
    weights: Path  # the export directory
    backend: str  # the engine's backend, as the front resolved it ("ort-cpu")
    session: SessionConfig
    name: str = "session"


@dataclass(frozen=True)
class VideoMeta:
    seq: int  # the front's running number of the frames it sent
    capture_ns: int
    width: int
    height: int
    colorspace: int  # the decoded frame's tags, so the worker converts it as the front would
    color_range: int


@dataclass(frozen=True)
class Delivered:
    seq: int
    handed_ns: int
    audio_delay_ns: int | None


@dataclass(frozen=True)
class FrameMeta:
    seq: int
    mode: FrameMode
    stages: StageTimes
    deadline_ns: int
    passthrough: bool  # True: send the frame the front sent, untouched (no payload)
    width: int
    height: int
    counts: dict[str, int] = field(default_factory=dict)  # the session's counts changed since the last


def pack(kind: Kind, meta: Any = None, payload: bytes | memoryview = b"") -> list[bytes | memoryview]:
    """One message as the buffers to write, in order (the payload is not copied)."""
    meta_bytes = pickle.dumps(meta, protocol=pickle.HIGHEST_PROTOCOL)
    return [HEADER.pack(int(kind), len(meta_bytes), len(payload)), meta_bytes, payload]


async def read_message(reader: asyncio.StreamReader) -> tuple[Kind, Any, bytes] | None:
    """The next message, or None at a clean end of the stream (between messages)."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise WireError("the stream ended inside a message header") from None
        return None
    kind, meta_len, payload_len = HEADER.unpack(header)
    if meta_len + payload_len > MAX_MESSAGE_BYTES:
        raise WireError(f"a message of {meta_len + payload_len} bytes (at most {MAX_MESSAGE_BYTES})")
    try:
        meta = pickle.loads(await reader.readexactly(meta_len))
        payload = await reader.readexactly(payload_len) if payload_len else b""
        return Kind(kind), meta, payload
    except asyncio.IncompleteReadError:
        raise WireError("the stream ended inside a message") from None
    except ValueError:
        raise WireError(f"unknown message kind {kind}") from None


def i420_planes(frame: av.VideoFrame) -> bytes:
    """The frame's picture as packed I420 (Y, then U, then V, no row padding)."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    return frame.to_ndarray().tobytes()


def i420_frame(
    payload: bytes, width: int, height: int, colorspace: int = 0, color_range: int = 0
) -> av.VideoFrame:
    """A yuv420p frame from `i420_planes`' bytes, carrying the given colour tags."""
    planes = np.frombuffer(payload, dtype=np.uint8).reshape(height * 3 // 2, width)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace = colorspace
    frame.color_range = color_range
    return frame
