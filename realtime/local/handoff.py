"""`run`'s hand-off of each processed frame to its sinks, and the audio delay that follows it.

A frame is delivered once the sinks have written it (the virtual camera, the file): then the
session records it (its latency, and its A/V offset against the audio delay then applied when
the virtual microphone plays the audio), and the stream's `DelayFollower` (the policy `serve`
follows too, `stablesync.realtime.pipeline.delivery`) takes the new latency into the delay.
"""

from __future__ import annotations

from stablesync.realtime.local.sinks.file import FileSink
from stablesync.realtime.local.sinks.virtual_camera import VirtualCameraSink
from stablesync.realtime.pipeline.delivery import DelayFollower, DeliveryConfig
from stablesync.realtime.pipeline.frames import OutputFrame
from stablesync.realtime.pipeline.session import LipSyncSession


class FrameHandOff:
    def __init__(
        self,
        session: LipSyncSession,
        delivery: DeliveryConfig,
        camera: VirtualCameraSink | None = None,
        file: FileSink | None = None,
        audio_delayed: bool = False,  # a live audio output plays the audio by `delay`
    ) -> None:
        self.session = session
        self.camera = camera
        self.file = file
        self.audio_delayed = audio_delayed
        self.delay = DelayFollower(session.telemetry, delivery, session.budget_ms)
        self.delay.follow()  # the delay before any frame: the expected latency

    async def __call__(self, out: OutputFrame) -> None:
        """Writes `out` to the sinks (raising their `UserError`), then records its delivery."""
        if self.camera is not None:
            await self.camera.send(out.image)
        if self.file is not None:
            await self.file.write_video(out.image, out.frame.capture_ns)
        self.session.mark_delivered(out, self.delay.applied_ns if self.audio_delayed else None)
        self.delay.follow()
