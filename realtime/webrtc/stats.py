"""Per-session figures and the data-channel protocol that carries them to the peer.

`SessionStats` is a view over the stream's `Telemetry` (the pipeline's: frames out, modes,
late and dropped frames, latency and A/V offset, each recorded at the frame's true hand-off,
when aiortc's sender has encoded and sent it; the same record `stablesync run` reports) plus
what only the transport knows: frames received, encode time, frames skipped before the
pipeline, the sync delay, the offer's candidates.

Once a second the server sends one JSON text message (`StatsMessage`) on the data channel
labelled `STATS_CHANNEL` that the client opened:

    {"type": "stats", "session": str, "uptime_s": float,
     "fps_in": float, "fps_out": float,          # video frames per second received / sent
     "server_latency_ms": {"p50", "p95", "max"},  # frame received -> encoded and sent
     "encode_ms": float,       # p50 time aiortc's sender takes to encode and send a video frame
     "sync_delay_ms": float,   # both returned tracks are timestamped this long after capture
     "av_offset_ms": float,    # p50 of each frame's latency - the sync delay at its hand-off:
                               # > 0 video leaves after the audio it matches, < 0 before it
     "late_frames": int, "dropped_frames": int,   # totals: passed through late / never sent
     "frames_out": int, "modes": {mode: count},   # "lipsync" or why a frame passed through
     "backend": str,                              # the engine's backend, or "passthrough"
     "pipeline": {"stages_p50_ms": {stage: ms}, "late": {why: count}},  # its own; {}: passthrough
     "ice_candidates": {"accepted", "rejected", "reasons": {reason: count}}}  # the offer's

Percentiles are over the last `WINDOW_FRAMES` frames. The page adds its own part (network,
jitter buffer, decode) to `server_latency_ms` to show glass-to-glass, and reads the browser's
A/V sync from getStats.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from typing import Any, TypedDict

import numpy as np

from stablesync.realtime.pipeline.frames import NS_PER_MS, NS_PER_S
from stablesync.realtime.pipeline.telemetry import SeriesName, Telemetry, TelemetrySummary
from stablesync.realtime.webrtc.candidates import CandidateReport

STATS_CHANNEL = "stats"
WINDOW_FRAMES = 125  # percentiles over the last 5 s at 25 fps
RATE_SPAN_NS = 2 * NS_PER_S  # frames per second over the last 2 s


class PipelineFigures(TypedDict, total=False):
    """A pipeline's own figures (none for passthrough): the median time of each stage over the
    recent frames, and the frames passed through late, by why (only the reasons that occurred)."""

    stages_p50_ms: dict[SeriesName, float]
    late: dict[str, int]


class LatencyFigures(TypedDict):
    p50: float
    p95: float
    max: float


class StatsMessage(TypedDict):
    type: str
    session: str
    uptime_s: float
    fps_in: float
    fps_out: float
    server_latency_ms: LatencyFigures
    encode_ms: float
    sync_delay_ms: float
    av_offset_ms: float
    late_frames: int
    dropped_frames: int
    frames_out: int
    modes: dict[str, int]
    backend: str
    pipeline: PipelineFigures
    ice_candidates: dict[str, Any]


class FinalStats(StatsMessage):
    """A closed session's last message, why it closed and its whole telemetry summary."""

    close_reason: str | None
    telemetry: TelemetrySummary


@dataclasses.dataclass
class SessionStats:
    session_id: str
    telemetry: Telemetry  # the stream's record of delivery (the pipeline's)
    started_ns: int = dataclasses.field(default_factory=time.monotonic_ns)
    frames_received: int = 0  # from aiortc, before anything is skipped
    dropped_frames: int = 0  # received but skipped before the pipeline (they queued in aiortc)
    sync_delay_ms: float = 0.0
    backend: str = "passthrough"
    encode_ms: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_FRAMES)
    )  # handed to aiortc's sender -> encoded and sent
    candidates: CandidateReport = dataclasses.field(default_factory=CandidateReport)
    _in_times_ns: collections.deque[int] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_FRAMES)
    )

    def frame_in(self, now_ns: int) -> None:
        self.frames_received += 1
        self._in_times_ns.append(now_ns)

    def frame_encoded(self, returned_ns: int, sent_ns: int) -> None:
        """A frame handed to aiortc's sender at `returned_ns` was encoded and sent by `sent_ns`."""
        self.encode_ms.append((sent_ns - returned_ns) / NS_PER_MS)

    @property
    def frames_out(self) -> int:
        return self.telemetry.counts["frames_out"]

    @property
    def modes(self) -> dict[str, int]:
        return self.telemetry.modes()

    def recent_latencies_ms(self) -> list[float]:
        """Capture -> encoded and sent, of the last `WINDOW_FRAMES` frames."""
        return self.telemetry.recent("glass_to_glass_ms", WINDOW_FRAMES)

    def encode_p50_ms(self) -> float:
        return float(np.median(np.fromiter(self.encode_ms, dtype=np.float64))) if self.encode_ms else 0.0

    def message(self, pipeline: PipelineFigures, now_ns: int | None = None) -> StatsMessage:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        latencies = self.recent_latencies_ms()
        offsets = self.telemetry.recent("av_offset_ms", WINDOW_FRAMES)
        p50, p95 = np.percentile(latencies, [50, 95]) if latencies else (0.0, 0.0)
        counts = self.telemetry.counts
        return {
            "type": "stats",
            "session": self.session_id,
            "uptime_s": round((now_ns - self.started_ns) / NS_PER_S, 3),
            "fps_in": round(_rate_hz(self._in_times_ns, now_ns), 2),
            "fps_out": round(self.telemetry.current_fps(now_ns), 2),
            "server_latency_ms": {
                "p50": round(float(p50), 2),
                "p95": round(float(p95), 2),
                "max": round(max(latencies, default=0.0), 2),
            },
            "encode_ms": round(self.encode_p50_ms(), 2),
            "sync_delay_ms": round(self.sync_delay_ms, 2),
            "av_offset_ms": round(float(np.median(offsets)), 2) if offsets else 0.0,
            "late_frames": counts["mode_late"],
            "dropped_frames": self.dropped_frames + counts["frames_dropped"],
            "frames_out": counts["frames_out"],
            "modes": self.telemetry.modes(),
            "backend": self.backend,
            "pipeline": pipeline,
            "ice_candidates": self.candidates.as_dict(),
        }

    def final(self, pipeline: PipelineFigures, close_reason: str | None) -> FinalStats:
        return FinalStats(
            **self.message(pipeline), close_reason=close_reason, telemetry=self.telemetry.summary()
        )

    def encode(self, pipeline: PipelineFigures) -> str:
        return json.dumps(self.message(pipeline))


def _rate_hz(times_ns: collections.deque[int], now_ns: int) -> float:
    """Events per second over the last `RATE_SPAN_NS` (0 when fewer than two events)."""
    recent = [t for t in times_ns if now_ns - t <= RATE_SPAN_NS]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) * NS_PER_S / max(recent[-1] - recent[0], 1)
