"""A/V delivery: how a live output delays the audio to meet the video, one policy for `run` and `serve`.

The picture leaves the pipeline some latency after its capture; the audio of the same instant
must leave as late. The values are in one place, `DeliveryConfig`; the rule is `DelayTarget`;
the policy object a front end holds for its stream is `DelayFollower`:

- the latency measure: the median of the stream's last `window_frames` latencies in its
  `Telemetry` (capture -> true hand-off: the sinks have written the frame; aiortc has encoded
  and sent it), once `min_frames` are measured; before that, `expected_budget_share` of the
  frames' deadline budget (none without a budget);
- the rule: the target is that latency rounded to `step_ms`, never below the floor (what the
  transport already holds the audio back, e.g. aiortc's receive prefetch), at most
  `max_delay_ms`; the applied delay moves to it only when they differ by `hysteresis_ms` (or the
  applied delay is under the floor), so the audio glitches rarely instead of at every wobble;
- when: after each frame's hand-off is recorded (`follow`), so the delay is a function of the
  latency series alone, whoever reads it when.

`run` releases the virtual microphone's audio by `applied_ns` (`AudioDelayLine`); `serve` sets its
returned audio's sync delay to it (`DelayedAudioTrack`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stablesync.realtime.pipeline.frames import NS_PER_MS
from stablesync.realtime.pipeline.telemetry import Telemetry


@dataclass(frozen=True)
class DeliveryConfig:
    """The delay rule's values. 25 frames (1 s at 25 fps): the median ignores up to 12 stray
    frames yet follows a new latency level within half a second. 10 frames before following:
    the first frames' latency (the engine's first calls) says little about the stream. 0.6 of
    the budget before that: live frames leave between the look-ahead plus a few stage times and
    the deadline, so the first measured median is near it and the start seldom jumps. 20 ms
    hysteresis on 10 ms steps: the audio is at most 25 ms off the video's median, under the
    40 ms by which sound may lead picture (EBU R37), the direction a held delay errs in when the
    latency rises. 1500 ms cap: above any deadline budget in use, and within what both delay
    lines hold (run: 256 chunks of 20 ms; serve: 3 s)."""

    window_frames: int = 25
    min_frames: int = 10
    expected_budget_share: float = 0.6
    step_ms: float = 10.0
    hysteresis_ms: float = 20.0
    max_delay_ms: float = 1500.0


class DelayTarget:
    """The rule: the delay to apply, given a latency and the floor."""

    def __init__(self, cfg: DeliveryConfig = DeliveryConfig()) -> None:
        self.cfg = cfg
        self.applied_ns: int | None = None  # None until the first update
        self.changes = 0  # how often the applied delay moved (each one is an audible glitch)

    def target_ns(self, latency_ns: int | None, floor_ns: int = 0) -> int:
        """What the delay would be if it followed `latency_ns` exactly (None: not measured yet)."""
        step_ns = self.cfg.step_ms * NS_PER_MS
        latency = 0 if latency_ns is None else round(latency_ns / step_ns) * int(step_ns)
        return int(min(max(latency, floor_ns), self.cfg.max_delay_ms * NS_PER_MS))

    def update(self, latency_ns: int | None, floor_ns: int = 0) -> int:
        """The delay to apply now, given the video's latency and the floor."""
        target = self.target_ns(latency_ns, floor_ns)
        applied = self.applied_ns
        if (
            applied is None
            or abs(target - applied) >= self.cfg.hysteresis_ms * NS_PER_MS
            or applied < floor_ns
        ):
            self.applied_ns = target
            self.changes += applied is not None
        assert self.applied_ns is not None
        return self.applied_ns


class DelayFollower:
    """One stream's audio delay, following the latency its `telemetry` records; `budget_ms` is
    the frames' deadline after capture (None: they have none)."""

    def __init__(
        self, telemetry: Telemetry, cfg: DeliveryConfig = DeliveryConfig(), budget_ms: float | None = None
    ) -> None:
        self.telemetry = telemetry
        self.cfg = cfg
        self.budget_ms = budget_ms
        self.rule = DelayTarget(cfg)

    @property
    def applied_ns(self) -> int:
        """The delay the audio leaves with now (0 before the first `follow`)."""
        return self.rule.applied_ns or 0

    @property
    def changes(self) -> int:
        return self.rule.changes

    def latency_ns(self) -> int | None:
        """The latency the delay follows: the recent median, else the expected one, else None."""
        recent = self.telemetry.recent("glass_to_glass_ms", self.cfg.window_frames)
        if len(recent) >= self.cfg.min_frames:
            return int(float(np.median(recent)) * NS_PER_MS)
        if self.budget_ms is not None:
            return int(self.budget_ms * self.cfg.expected_budget_share * NS_PER_MS)
        return None

    def follow(self, floor_ns: int = 0) -> int:
        """Call after each hand-off is recorded (and when the floor changes): the delay to apply."""
        return self.rule.update(self.latency_ns(), floor_ns)
