"""Throughput and latency against the webcam's resolution (480p, 720p, 1080p).

A camera stand-in at each resolution: the demo photo, scaled to 60% of the frame height and
moving a little every frame (so tracking runs on every frame, as with a webcam), paced at the
model's fps together with looped speech. Reports fps, glass-to-glass p50/p95, stage times, late
frames and the process's cores.

`python -m stablesync.benchmarks.resolution --out benchmarks/out/resolution.json [--seconds 20] [--quick]`
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech, speech_like
from stablesync.benchmarks.pipeline import run_paced

RESOLUTIONS = {"480p": (854, 480), "720p": (1280, 720), "1080p": (1920, 1080)}


class MovingFaceCamera:
    """Frames of `size` with the face drifting a few pixels per frame (a webcam stand-in)."""

    def __init__(
        self, face_rgb: NDArray[np.uint8], size: tuple[int, int], fps: float, seconds: float
    ) -> None:
        width, height = size
        side = int(height * 0.6)  # a video call: the head fills most of the height
        self.face = cv2.resize(face_rgb, (side, side * face_rgb.shape[0] // face_rgb.shape[1]))
        self.canvas = np.full((height, width, 3), 90, np.uint8)
        self.fps, self.frames = fps, int(seconds * fps)

    def frame(self, index: int) -> NDArray[np.uint8]:
        image = self.canvas.copy()
        fh, fw = self.face.shape[:2]
        h, w = image.shape[:2]
        x = (w - fw) // 2 + int(12 * np.sin(index / 9.0))
        y = (h - fh) // 2 + int(6 * np.cos(index / 13.0))
        image[y : y + fh, x : x + fw] = self.face
        return image

    async def run(self, emit: Any, clock: Any) -> None:
        from stablesync.realtime.pipeline.frames import NS_PER_S, VideoFrame

        for index in range(self.frames):
            pts_ns = int(index * NS_PER_S / self.fps)
            await clock.wait_for_pts(pts_ns)
            await emit(VideoFrame(self.frame(index), clock.capture_ns(pts_ns), pts_ns, index))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.resolution", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/resolution.json"))
    parser.add_argument("--seconds", type=float, default=20.0, help="per resolution")
    parser.add_argument("--quick", action="store_true", help="4 s per resolution")
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    from stablesync.realtime.local.sources import load_image

    seconds = 4.0 if args.quick else args.seconds
    face_path, speech = demo_face_and_speech()
    speech = speech_like(8.0) if speech is None else speech
    face = load_image(face_path)
    figures: dict[str, Any] = {"seconds_each": seconds, "samples": {}, "samples_unit": "ms glass-to-glass"}
    with tempfile.TemporaryDirectory() as tmp:
        weights, figures["weights"] = bench_weights(args.weights, Path(tmp))
        for name, size in RESOLUTIONS.items():

            def camera(fps: float, size: tuple[int, int] = size) -> MovingFaceCamera:
                return MovingFaceCamera(face, size, fps, seconds)

            run = asyncio.run(run_paced(weights, speech, seconds, 250.0, video=camera))
            figures[name] = {
                k: run[k]
                for k in (
                    "sustained_fps",
                    "glass_to_glass_ms",
                    "stages_ms",
                    "lipsync_frames",
                    "late_frames",
                    "dropped_frames",
                    "cores",
                    "cpu_ms_per_frame",
                )
            }
            g = run["glass_to_glass_ms"]
            fps = run["sustained_fps"]
            print(
                f"{name}: {fps:.1f} fps, glass-to-glass p50 {g.get('p50')} p95 {g.get('p95')} ms,"
                f" late {run['late_frames']}, {run['cores']} cores"
            )
    path = write_result(args.out, "resolution", figures)
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
