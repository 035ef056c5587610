"""Typed frames that flow through the pipeline, each stamped with its capture time.

Times are `time.monotonic_ns()` values (`capture_ns`: when the light or sound was captured,
or when a paced file source released it) and media timestamps in nanoseconds from the start of
the stream (`pts_ns`). Images are RGB uint8 (H, W, 3); audio is mono float32 in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000

RgbImage = NDArray[np.uint8]
AudioSamples = NDArray[np.float32]


@dataclass(frozen=True)
class VideoFrame:
    image: RgbImage  # (H, W, 3) RGB uint8
    capture_ns: int  # monotonic clock at capture
    pts_ns: int  # position in the stream
    index: int  # running frame number of the source
    still: bool = False  # the source promises the image equals the previous frame's (avatar mode)
    # what the front end decoded `image` from (e.g. aiortc's frame), carried through untouched to
    # the `OutputFrame` so a frame that passes through can be sent as it came; never read here
    source: object = field(default=None, compare=False, repr=False)

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True)
class CapturedAudio:
    """Sound as the input delivered it (e.g. 48 kHz stereo): what the outputs play."""

    samples: AudioSamples  # (n, channels) float32 in [-1, 1]
    sample_rate_hz: int

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    def converted(self, sample_rate_hz: int, channels: int) -> AudioSamples:
        """(n, channels) at `sample_rate_hz`: mixed (or copied) to the channels, then resampled."""
        samples = self.samples
        if self.channels != channels:
            samples = np.repeat(samples.mean(axis=1, keepdims=True), channels, axis=1)
        if self.sample_rate_hz != sample_rate_hz:
            from stablesync.audio import resample

            rate = self.sample_rate_hz
            samples = np.stack([resample(c, rate, sample_rate_hz) for c in samples.T], axis=1)
        return samples.astype(np.float32, copy=False)


@dataclass(frozen=True)
class AudioChunk:
    """`samples` is what the model hears (mono, the model's rate); `captured`, when the input had
    another rate or channel layout, is the same stretch of time as the input delivered it, which
    the outputs play instead."""

    samples: AudioSamples  # (n,) mono float32
    sample_rate_hz: int
    capture_ns: int  # monotonic clock at the first sample
    pts_ns: int  # stream position of the first sample
    captured: CapturedAudio | None = None

    def playable(self) -> CapturedAudio:
        """What the outputs play: `captured`, else the samples themselves as one channel."""
        if self.captured is not None:
            return self.captured
        return CapturedAudio(self.samples.reshape(-1, 1), self.sample_rate_hz)

    @property
    def duration_ns(self) -> int:
        return int(self.samples.shape[0]) * NS_PER_S // self.sample_rate_hz

    @property
    def end_capture_ns(self) -> int:
        return self.capture_ns + self.duration_ns


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent per stage on one frame (0 where a stage did not run)."""

    track_ms: float = 0.0
    wait_audio_ms: float = 0.0
    infer_ms: float = 0.0
    composite_ms: float = 0.0


# What happened to a frame: "lipsync" (generated mouth composited), "noface" (no face: passed
# through), "late" (would have missed its deadline: passed through), "error" (the engine or a
# stage failed: passed through), "warmup" (no reference yet: passed through), "bypass" (the user
# paused the filter: passed through untouched).
FrameMode = Literal["lipsync", "noface", "late", "error", "warmup", "bypass"]
# What happened to a frame a front end handed on: its `FrameMode`, or "passthrough" (`serve
# --backend passthrough`: no pipeline, every frame returned as it came).
DeliveredMode = FrameMode | Literal["passthrough"]


@dataclass(frozen=True)
class OutputFrame:
    """A processed frame, ready for the sinks; `mode` (`FrameMode`) says what happened to it."""

    frame: VideoFrame
    image: RgbImage
    mode: FrameMode
    stages: StageTimes = field(default_factory=StageTimes)
    deadline_ns: int = 0
