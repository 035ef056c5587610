"""A/V delivery: the rule by which a live output delays the audio to meet the video.

The picture leaves the pipeline some latency after its capture; the audio of the same instant
must leave as late. `DelayTarget` turns the video's measured latency (the median of recent
frames, measured at the hand-off: after encoding for WebRTC) into the audio delay an output
applies: rounded to `step_ms`, never below `floor_ns` (what the transport already holds the
audio back, e.g. aiortc's receive prefetch), at most `max_delay_ms`, and moved only when the
target differs from the applied delay by at least `hysteresis_ms`, so the audio glitches
rarely instead of at every wobble of the latency.
"""

from __future__ import annotations

from dataclasses import dataclass

from realtime.pipeline.frames import NS_PER_MS


@dataclass(frozen=True)
class DelayRule:
    hysteresis_ms: float = 20.0  # the applied delay moves only when the target is this far from it
    step_ms: float = 10.0  # targets are rounded to this
    max_delay_ms: float = 1000.0


class DelayTarget:
    def __init__(self, rule: DelayRule = DelayRule()) -> None:
        self.rule = rule
        self.applied_ns: int | None = None  # None until the first update
        self.changes = 0  # how often the applied delay moved (each one is an audible glitch)

    def target_ns(self, latency_ns: int | None, floor_ns: int = 0) -> int:
        """What the delay would be if it followed `latency_ns` exactly (None: not measured yet)."""
        step_ns = self.rule.step_ms * NS_PER_MS
        latency = 0 if latency_ns is None else round(latency_ns / step_ns) * int(step_ns)
        return int(min(max(latency, floor_ns), self.rule.max_delay_ms * NS_PER_MS))

    def update(self, latency_ns: int | None, floor_ns: int = 0) -> int:
        """The delay to apply now, given the video's latency and the floor."""
        target = self.target_ns(latency_ns, floor_ns)
        applied = self.applied_ns
        if (
            applied is None
            or abs(target - applied) >= self.rule.hysteresis_ms * NS_PER_MS
            or applied < floor_ns
        ):
            self.applied_ns = target
            self.changes += applied is not None
        assert self.applied_ns is not None
        return self.applied_ns
