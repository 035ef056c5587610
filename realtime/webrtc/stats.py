"""Per-session telemetry and the data-channel protocol that carries it to the peer.

Once a second the server sends one JSON text message on the data channel labelled
`STATS_CHANNEL` that the client opened:

    {"type": "stats", "session": str, "uptime_s": float,
     "fps_in": float, "fps_out": float,          # video frames per second received / sent
     "server_latency_ms": {"p50", "p95", "max"},  # frame received -> encoded and sent
     "encode_ms": float,       # p50 time aiortc's sender takes to encode and send a video frame
     "sync_delay_ms": float,   # both returned tracks are timestamped this long after capture
     "av_offset_ms": float,    # video latency p50 - sync delay: > 0 video leaves after the audio
                               # it matches, < 0 before it (a receiver playing by timestamps waits)
     "late_frames": int, "dropped_frames": int,   # totals: missed deadline / replaced by newer
     "frames_out": int, "modes": {mode: count},   # "lipsync" or why a frame passed through
     "backend": str, "pipeline": {...},           # the pipeline's own figures (per-stage ms)
     "ice_candidates": {"accepted", "rejected", "reasons": {reason: count}}}  # the offer's

The page adds its own part (network, jitter buffer, decode) to `server_latency_ms` to show
glass-to-glass, and reads the browser's A/V sync from getStats.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import time
from typing import Any

import numpy as np

from realtime.webrtc.candidates import CandidateReport

STATS_CHANNEL = "stats"
WINDOW_FRAMES = 125  # percentiles over the last 5 s at 25 fps


@dataclasses.dataclass
class SessionStats:
    session_id: str
    started_ns: int = dataclasses.field(default_factory=time.monotonic_ns)
    frames_in: int = 0
    frames_out: int = 0
    dropped_frames: int = 0  # dropped by the server's own queues (the pipeline counts its own)
    sync_delay_ms: float = 0.0
    backend: str = "passthrough"
    modes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    latencies_ms: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_FRAMES)
    )
    encode_ms: collections.deque[float] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_FRAMES)
    )  # handed to aiortc's sender -> encoded and sent
    candidates: CandidateReport = dataclasses.field(default_factory=CandidateReport)
    _in_times_ns: collections.deque[int] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_FRAMES)
    )
    _out_times_ns: collections.deque[int] = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=WINDOW_FRAMES)
    )

    def frame_in(self, now_ns: int) -> None:
        self.frames_in += 1
        self._in_times_ns.append(now_ns)

    def frame_out(self, arrival_ns: int, returned_ns: int, sent_ns: int) -> None:
        """A frame that arrived at `arrival_ns`, handed to aiortc's sender at `returned_ns`, was
        encoded and sent by `sent_ns`: its latency is measured at that true hand-off."""
        self.frames_out += 1
        self._out_times_ns.append(sent_ns)
        self.latencies_ms.append((sent_ns - arrival_ns) / 1e6)
        self.encode_ms.append((sent_ns - returned_ns) / 1e6)

    def encode_p50_ms(self) -> float:
        return float(np.median(np.fromiter(self.encode_ms, dtype=np.float64))) if self.encode_ms else 0.0

    def latency_percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        return float(np.percentile(np.fromiter(self.latencies_ms, dtype=np.float64), q))

    def message(self, pipeline: dict[str, Any], now_ns: int | None = None) -> dict[str, Any]:
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        p50 = self.latency_percentile_ms(50)
        return {
            "type": "stats",
            "session": self.session_id,
            "uptime_s": round((now_ns - self.started_ns) / 1e9, 3),
            "fps_in": round(_rate_hz(self._in_times_ns, now_ns), 2),
            "fps_out": round(_rate_hz(self._out_times_ns, now_ns), 2),
            "server_latency_ms": {
                "p50": round(p50, 2),
                "p95": round(self.latency_percentile_ms(95), 2),
                "max": round(max(self.latencies_ms, default=0.0), 2),
            },
            "encode_ms": round(self.encode_p50_ms(), 2),
            "sync_delay_ms": round(self.sync_delay_ms, 2),
            "av_offset_ms": round(p50 - self.sync_delay_ms, 2) if self.latencies_ms else 0.0,
            "late_frames": self.modes["late"],
            "dropped_frames": self.dropped_frames + int(pipeline.get("dropped_frames", 0)),
            "frames_out": self.frames_out,
            "modes": dict(self.modes),
            "backend": self.backend,
            "pipeline": {k: v for k, v in pipeline.items() if k != "dropped_frames"},
            "ice_candidates": self.candidates.as_dict(),
        }

    def encode(self, pipeline: dict[str, Any]) -> str:
        return json.dumps(self.message(pipeline))


def _rate_hz(times_ns: collections.deque[int], now_ns: int, span_ns: int = 2_000_000_000) -> float:
    """Events per second over the last `span_ns` (0 when fewer than two events)."""
    recent = [t for t in times_ns if now_ns - t <= span_ns]
    if len(recent) < 2:
        return 0.0
    return (len(recent) - 1) * 1e9 / max(recent[-1] - recent[0], 1)
