"""How one lip-sync stream behaves: its deadline, queues, reference refresh, tracking and
rendering settings (`LipSyncSession` takes one; `stablesync run`/`serve` build it from flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stablesync.realtime.pipeline.compositing import CompositeConfig
from stablesync.realtime.pipeline.tracking import TrackingConfig


@dataclass(frozen=True)
class SessionConfig:
    budget_ms: float = 250.0  # capture -> hand-off deadline of every frame (live mode)
    realtime: bool = True
    lookahead_ms: float | None = None  # None: the engine manifest's
    audio_queue_chunks: int = 64
    stage_queue_frames: int = 8
    output_queue_frames: int = 4
    audio_out_chunks: int = 512
    # keep the input audio for `next_audio` (a sink that plays it: the mp4, the virtual mic);
    # False where nobody reads it (WebRTC sends the caller's own frames), so nothing piles up
    audio_out: bool = True
    reference_drift: float = 1.0  # HeadPose.distance that triggers a new reference
    drift_frames: int = 10  # ... when it lasts this many frames
    late_window_frames: int = 25  # frames considered when deciding to skip tracking
    # Force the lips shut on silent windows (the generator's own silent mouth otherwise). Off: on
    # the demo the forced closing, which comes a window's length into each pause, lowered the
    # mouth/speech correlation from 0.76 to 0.62 (best lag within 2 frames).
    close_lips_in_silence: bool = False
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    composite: CompositeConfig = field(default_factory=CompositeConfig)
    label: str | None = None  # visible corner label on the frames the filter changes (--label)
    # the watermark's run id (None: a random one, as every user-facing run has): benchmarks that
    # compare two renders fix it, since the mark's pattern differs by up to 7 grey levels between
    # ids and the face mesh measuring the output reads that (RESULTS.md, session 36)
    watermark_run_id: int | None = None
