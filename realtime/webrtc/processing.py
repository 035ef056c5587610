"""What a session hands its media to: the real-time pipeline (`lipsync.py`), or passthrough.

`PipelineFactory` holds what every session shares (one loaded engine, one batcher);
`open_session` gives one `SessionPipeline` per peer, closed when the peer goes. A pipeline is a
stream: video frames in (latest-wins: a frame not yet taken is replaced), processed frames out
in capture order, audio in as 16 kHz mono. Its `telemetry` is the stream's record of delivery:
the session reports each frame's true hand-off (aiortc has encoded and sent it) to `delivered`.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import av
import numpy as np
from numpy.typing import NDArray

from stablesync.realtime.pipeline.frames import DeliveredMode, OutputFrame
from stablesync.realtime.pipeline.slots import LatestSlot
from stablesync.realtime.pipeline.telemetry import Telemetry
from stablesync.realtime.webrtc.stats import PipelineFigures

FloatArray = NDArray[np.float32]
PIPELINE_AUDIO_RATE_HZ = 16_000


@dataclasses.dataclass(frozen=True)
class ProcessedFrame:
    frame: av.VideoFrame
    capture_ns: int  # its arrival less the receiver's hold (media.VideoHold), on the session's clock
    mode: DeliveredMode  # "lipsync", or why it passed through: "passthrough", "noface", "late", ...
    output: OutputFrame | None = None  # the pipeline's frame (stage times, deadline); None: passthrough


class SessionPipeline(Protocol):
    @property
    def telemetry(self) -> Telemetry:
        """The stream's figures: frames in, out and dropped, modes, latency at the hand-off."""

    @property
    def budget_ms(self) -> float | None:
        """Each frame's deadline after its capture (None: frames have none)."""

    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        """16 kHz mono float32 samples whose first sample was captured at `capture_ns`."""

    async def push_video(self, frame: av.VideoFrame, capture_ns: int) -> None: ...

    async def next_frame(self) -> ProcessedFrame | None:
        """The next processed frame in capture order; None after `end`. Raises
        `stablesync.realtime.pipeline.session.StageFailed` when the pipeline itself failed (the session
        closes)."""

    def delivered(self, frame: ProcessedFrame, handed_ns: int, audio_delay_ns: int | None) -> None:
        """`frame` reached the peer's transport (encoded and sent) at `handed_ns`, while the
        returned audio was delayed by `audio_delay_ns`: recorded in `telemetry`."""

    def figures(self) -> PipelineFigures:
        """The pipeline's own figures for the stats message (per-stage times, late frames)."""

    async def end(self) -> None: ...

    async def aclose(self) -> None: ...


class PipelineFactory(Protocol):
    backend: str  # shown to peers: "passthrough" or the engine's backend

    async def open_session(self, session_id: str) -> SessionPipeline: ...

    async def aclose(self) -> None: ...


class PassthroughSession:
    """Returns every frame untouched: `serve --backend passthrough` (transport only)."""

    def __init__(self) -> None:
        self._slot: LatestSlot[tuple[av.VideoFrame, int]] = LatestSlot()
        self.telemetry = Telemetry()
        self.budget_ms: float | None = None  # no deadlines: frames go straight back

    def push_audio(self, samples: FloatArray, capture_ns: int) -> None:
        del samples, capture_ns

    async def push_video(self, frame: av.VideoFrame, capture_ns: int) -> None:
        self.telemetry.count("frames_in")
        if self._slot.put((frame, capture_ns)):
            self.telemetry.count("frames_dropped")

    async def next_frame(self) -> ProcessedFrame | None:
        item = await self._slot.get()
        return None if item is None else ProcessedFrame(item[0], item[1], "passthrough")

    def delivered(self, frame: ProcessedFrame, handed_ns: int, audio_delay_ns: int | None) -> None:
        self.telemetry.record_delivery(frame.capture_ns, frame.mode, handed_ns, audio_delay_ns)

    def figures(self) -> PipelineFigures:
        return {}

    async def end(self) -> None:
        self._slot.end()

    async def aclose(self) -> None:
        self._slot.end()


class PassthroughFactory:
    backend = "passthrough"

    async def open_session(self, session_id: str) -> SessionPipeline:
        del session_id
        return PassthroughSession()

    async def aclose(self) -> None:
        return None
