"""What a session hands its video and audio to: the real-time pipeline, or passthrough.

`PipelineFactory` holds what is shared by every session (one loaded engine, one batcher);
`open_session` gives one `SessionPipeline` per peer, closed when the peer goes.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import av
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float32]
PIPELINE_AUDIO_RATE_HZ = 16_000


@dataclasses.dataclass(frozen=True)
class ProcessedFrame:
    frame: av.VideoFrame
    processed: bool  # False: passed through untouched (no face, degraded, passthrough mode)
    late: bool = False  # missed its deadline


class SessionPipeline(Protocol):
    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        """16 kHz mono float32 samples whose first sample was captured at `capture_ns`."""

    async def process(self, frame: av.VideoFrame, capture_ns: int) -> ProcessedFrame: ...

    async def aclose(self) -> None: ...


class PipelineFactory(Protocol):
    mode: str  # shown to peers: "passthrough" or the engine's backend

    def open_session(self, session_id: str) -> SessionPipeline: ...

    async def aclose(self) -> None: ...


class PassthroughSession:
    """Returns every frame untouched: what `serve` does without an engine."""

    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        del samples, capture_ns

    async def process(self, frame: av.VideoFrame, capture_ns: int) -> ProcessedFrame:
        del capture_ns
        return ProcessedFrame(frame=frame, processed=False)

    async def aclose(self) -> None:
        return None


class PassthroughFactory:
    mode = "passthrough"

    def open_session(self, session_id: str) -> SessionPipeline:
        del session_id
        return PassthroughSession()

    async def aclose(self) -> None:
        return None
