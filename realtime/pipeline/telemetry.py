"""Telemetry: per-stage times, glass-to-glass latency, A/V offset, fps, late and dropped frames.

`Telemetry` is owned by one stream and only touched from the event loop. It is the stream's one
record of delivery, for `run` and `serve` alike: a frame is recorded when it is handed over (the
sinks have written it; aiortc's sender has encoded and sent it), so "frames_out", "mode_<mode>",
the latency (capture -> hand-off) and the A/V offset (that latency minus the audio's delay then:
> 0 the picture leaves after the sound of the same instant) mean the same in both. Series are
bounded (the newest `max_samples` values) so a long run does not grow memory.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Required, TypedDict, get_args

import numpy as np

from stablesync.realtime.pipeline.clock import Clock, SystemClock
from stablesync.realtime.pipeline.frames import NS_PER_MS, NS_PER_S, DeliveredMode, OutputFrame, StageTimes
from stablesync.realtime.pipeline.sample_ring import SampleRing

SeriesName = Literal[
    "glass_to_glass_ms", "av_offset_ms", "track_ms", "wait_audio_ms", "infer_ms", "composite_ms"
]
SERIES: tuple[SeriesName, ...] = get_args(SeriesName)


class Percentiles(TypedDict, total=False):
    """One series' figures (milliseconds): `count` always, the rest when it is above 0."""

    count: Required[int]
    mean: float
    p50: float
    p95: float
    p99: float
    max: float


class TelemetrySummary(TypedDict):
    """`Telemetry.summary()`: each series' percentiles, the fps over the run, the frame counts
    (`frames_out`, `mode_<mode>`, `frames_dropped`, `over_budget`, ...) and the events noted."""

    glass_to_glass_ms: Percentiles
    av_offset_ms: Percentiles
    track_ms: Percentiles
    wait_audio_ms: Percentiles
    infer_ms: Percentiles
    composite_ms: Percentiles
    sustained_fps: float
    counts: dict[str, int]
    events: dict[str, int]


@dataclass(frozen=True)
class TelemetryConfig:
    max_samples: int = 100_000
    fps_window_s: float = 2.0


def percentiles(values: list[float] | deque[float] | SampleRing) -> Percentiles:
    if not values:
        return {"count": 0}
    arr = np.asarray(values, dtype=np.float64)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "count": int(arr.size),
        "mean": round(float(arr.mean()), 2),
        "p50": round(float(p50), 2),
        "p95": round(float(p95), 2),
        "p99": round(float(p99), 2),
        "max": round(float(arr.max()), 2),
    }


class Telemetry:
    def __init__(self, cfg: TelemetryConfig = TelemetryConfig(), clock: Clock | None = None) -> None:
        self.cfg = cfg
        self.clock = clock if clock is not None else SystemClock()  # hand-off times are on this clock
        self.series: dict[str, SampleRing] = {name: SampleRing(cfg.max_samples) for name in SERIES}
        self.counts: Counter[str] = Counter()
        self._out_times_ns: deque[int] = deque(maxlen=1024)
        self._first_out_ns: int | None = None
        self._last_out_ns: int | None = None
        self.messages: deque[str] = deque(maxlen=20)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def note(self, message: str) -> None:
        """A one-line event (a fault, a recovery) kept for the summary; repeated ones are counted."""
        if message not in self.messages:
            self.messages.append(message)
        self.counts[f"event:{message}"] += 1

    def record_output(
        self, out: OutputFrame, handed_ns: int, audio_delay_ns: int | None, latency: bool = True
    ) -> None:
        """A pipeline frame handed over at `handed_ns` (see `record_delivery`)."""
        self.record_delivery(
            out.frame.capture_ns,
            out.mode,
            handed_ns,
            audio_delay_ns,
            stages=out.stages,
            deadline_ns=out.deadline_ns,
            latency=latency,
        )

    def record_delivery(
        self,
        capture_ns: int,
        mode: DeliveredMode,
        handed_ns: int,
        audio_delay_ns: int | None,
        stages: StageTimes | None = None,
        deadline_ns: int = 0,
        latency: bool = True,
    ) -> None:
        """A frame captured at `capture_ns` handed over at `handed_ns`; `mode` says what happened
        to it, `stages` its stage times (None: no pipeline stage ran); `audio_delay_ns` is what
        the audio path delays the audio by at that moment (None when no live audio output
        exists). `latency` False (offline runs, whose capture times are synthetic) records no
        latency figures."""
        latency_ms = (handed_ns - capture_ns) / NS_PER_MS
        if latency:
            self.series["glass_to_glass_ms"].append(latency_ms)
        if audio_delay_ns is not None and latency:
            # > 0: the picture leaves after the sound of the same instant
            self.series["av_offset_ms"].append(latency_ms - audio_delay_ns / NS_PER_MS)
        for name in ("track_ms", "wait_audio_ms", "infer_ms", "composite_ms"):
            value = 0.0 if stages is None else getattr(stages, name)
            if value > 0.0:
                self.series[name].append(value)
        self.counts["frames_out"] += 1
        self.counts[f"mode_{mode}"] += 1
        if deadline_ns and handed_ns > deadline_ns:
            self.counts["over_budget"] += 1
        self._out_times_ns.append(handed_ns)
        if self._first_out_ns is None:
            self._first_out_ns = handed_ns
        self._last_out_ns = handed_ns

    def recent(self, name: SeriesName, n: int) -> list[float]:
        """The newest `n` values of a series, oldest first."""
        return self.series[name].newest(n)

    def modes(self) -> dict[str, int]:
        """Frames handed over, by mode ("lipsync", or why the frame passed through)."""
        return {k.removeprefix("mode_"): v for k, v in sorted(self.counts.items()) if k.startswith("mode_")}

    def current_fps(self, now_ns: int | None = None) -> float:
        now_ns = self.clock.monotonic_ns() if now_ns is None else now_ns
        horizon = now_ns - int(self.cfg.fps_window_s * NS_PER_S)
        recent = [t for t in self._out_times_ns if t >= horizon]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) * NS_PER_S / max(recent[-1] - recent[0], 1)

    def sustained_fps(self) -> float:
        n = self.counts["frames_out"]
        if n < 2 or self._first_out_ns is None or self._last_out_ns is None:
            return 0.0
        return (n - 1) * NS_PER_S / max(self._last_out_ns - self._first_out_ns, 1)

    def recent_latency_ms(self, n: int = 25) -> float | None:
        """Median glass-to-glass latency of the last n frames (what the audio delay follows)."""
        tail = self.recent("glass_to_glass_ms", n)
        return float(np.median(tail)) if tail else None

    def status_line(self) -> str:
        """fps, then (live runs only: offline ones have no latency) glass-to-glass and A/V offset,
        then the frame counts."""
        g2g = self.recent_latency_ms()
        av = self.series["av_offset_ms"]
        av_txt = f" av {av[-1]:+.0f}ms" if av else ""
        latency_txt = "" if g2g is None else f" | g2g {g2g:5.0f} ms{av_txt}"
        c = self.counts
        return (
            f"{self.current_fps():5.1f} fps{latency_txt} | out {c['frames_out']}"
            f" lipsync {c['mode_lipsync']} late {c['mode_late']} dropped {c['frames_dropped']}"
            f" noface {c['mode_noface']} err {c['mode_error']}"
        )

    def summary(self) -> TelemetrySummary:
        p = {name: percentiles(values) for name, values in self.series.items()}
        return TelemetrySummary(
            glass_to_glass_ms=p["glass_to_glass_ms"],
            av_offset_ms=p["av_offset_ms"],
            track_ms=p["track_ms"],
            wait_audio_ms=p["wait_audio_ms"],
            infer_ms=p["infer_ms"],
            composite_ms=p["composite_ms"],
            sustained_fps=round(self.sustained_fps(), 2),
            counts={k: v for k, v in sorted(self.counts.items()) if not k.startswith("event:")},
            events={k[6:]: v for k, v in self.counts.items() if k.startswith("event:")},
        )

    def summary_text(self) -> str:
        s = self.summary()
        c = s["counts"]
        lines = [
            f"frames out {c.get('frames_out', 0)} at {s['sustained_fps']:.1f} fps:"
            f" lipsync {c.get('mode_lipsync', 0)},"
            f" late {c.get('mode_late', 0)}, dropped {c.get('frames_dropped', 0)},"
            f" no face {c.get('mode_noface', 0)}, errors {c.get('mode_error', 0)}",
        ]
        for name in SERIES:
            p = s[name]
            if p.get("count"):
                figures = f"p50 {p['p50']:7.1f}  p95 {p['p95']:7.1f}  p99 {p['p99']:7.1f}"
                lines.append(f"  {name:<18} {figures}  (n={p['count']})")
        for event, n in s["events"].items():
            lines.append(f"  event x{n}: {event}")
        return "\n".join(lines)

    def write_json(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data: dict[str, Any] = {**self.summary(), **(extra or {})}
        tmp = path.with_name(path.name + ".partial")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(path)
        return path
