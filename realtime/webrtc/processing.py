"""What a session hands its media to: the real-time pipeline (`lipsync.py`), or passthrough.

`PipelineFactory` holds what every session shares (one loaded engine, one batcher);
`open_session` gives one `SessionPipeline` per peer, closed when the peer goes. A pipeline is a
stream: video frames in (latest-wins: a frame not yet taken is replaced), processed frames out
in capture order, audio in as 16 kHz mono.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import av
import numpy as np
from numpy.typing import NDArray

from realtime.pipeline.slots import LatestSlot

FloatArray = NDArray[np.float32]
PIPELINE_AUDIO_RATE_HZ = 16_000


@dataclasses.dataclass(frozen=True)
class ProcessedFrame:
    frame: av.VideoFrame
    capture_ns: int  # when the input frame arrived (the session's capture clock)
    mode: str  # "lipsync", or why it passed through: "passthrough", "noface", "late", "error", ...


class SessionPipeline(Protocol):
    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        """16 kHz mono float32 samples whose first sample was captured at `capture_ns`."""

    async def push_video(self, frame: av.VideoFrame, capture_ns: int) -> None: ...

    async def next_frame(self) -> ProcessedFrame | None:
        """The next processed frame in capture order; None after `end`. Raises
        `realtime.pipeline.session.StageFailed` when the pipeline itself failed (the session closes)."""

    def figures(self) -> dict[str, Any]:
        """Pipeline figures for the stats message: "dropped_frames" (int) and any per-stage times."""

    async def end(self) -> None: ...

    async def aclose(self) -> None: ...


class PipelineFactory(Protocol):
    mode: str  # shown to peers: "passthrough" or the engine's backend

    async def open_session(self, session_id: str) -> SessionPipeline: ...

    async def aclose(self) -> None: ...


class PassthroughSession:
    """Returns every frame untouched: `serve --backend passthrough` (transport only)."""

    def __init__(self) -> None:
        self._slot: LatestSlot[tuple[av.VideoFrame, int]] = LatestSlot()

    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        del samples, capture_ns

    async def push_video(self, frame: av.VideoFrame, capture_ns: int) -> None:
        self._slot.put((frame, capture_ns))

    async def next_frame(self) -> ProcessedFrame | None:
        item = await self._slot.get()
        return None if item is None else ProcessedFrame(item[0], item[1], "passthrough")

    def figures(self) -> dict[str, Any]:
        return {"dropped_frames": self._slot.dropped}

    async def end(self) -> None:
        self._slot.end()

    async def aclose(self) -> None:
        self._slot.end()


class PassthroughFactory:
    mode = "passthrough"

    async def open_session(self, session_id: str) -> SessionPipeline:
        del session_id
        return PassthroughSession()

    async def aclose(self) -> None:
        return None
