"""Does the paced pipeline still hold 25 fps with no late frames with the watermark? (issue 18)

Paced runs of the real-time pipeline on a 720p webcam stand-in (the resolution benchmark's
moving demo face, with looped speech), alternately with the mark (as shipped) and with
`Watermarker.mark` replaced by the identity for the run (the only way to run without it: no flag
turns it off), round after round, so both see the same machine. On a shared machine late
frames come from the load (inference slowed by other programs); what the mark adds is the
difference between the two columns, and its own cost per frame is `embed_ms_720p_median` of
`benchmarks/watermark.py`.

`python -m stablesync.benchmarks.watermark_pipeline --out benchmarks/out/watermark_pipeline.json [--rounds 3]
[--seconds 8] [--quick]`
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.benchmarks.common import write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech, speech_like
from stablesync.benchmarks.pipeline import run_paced
from stablesync.benchmarks.resolution import RESOLUTIONS, MovingFaceCamera
from stablesync.realtime.pipeline.frames import RgbImage
from stablesync.realtime.watermark.embed import Watermarker


@contextmanager
def unmarked() -> Iterator[None]:
    """For the runs without the mark: `Watermarker.mark` returns the frame as it is."""
    original = Watermarker.mark

    def identity(self: Watermarker, image: RgbImage) -> RgbImage:
        return image

    Watermarker.mark = identity  # type: ignore[method-assign]
    try:
        yield
    finally:
        Watermarker.mark = original  # type: ignore[method-assign]


def one_run(weights: Path, speech: Any, face: RgbImage, seconds: float, marked: bool) -> dict[str, Any]:
    size = RESOLUTIONS["720p"]

    def camera(fps: float) -> MovingFaceCamera:
        return MovingFaceCamera(face, size, fps, seconds)

    load = os.getloadavg()[0]
    if marked:
        figures = asyncio.run(run_paced(weights, speech, seconds, 250.0, video=camera))
    else:
        with unmarked():
            figures = asyncio.run(run_paced(weights, speech, seconds, 250.0, video=camera))
    return {
        "marked": marked,
        "load_average_1min": load,
        "fps": figures["sustained_fps"],
        "late_frames": figures["late_frames"],
        "frames_out": figures["frames_out"],
        "composite_ms_p50": figures["stages_ms"]["composite_ms"].get("p50"),
        "infer_ms_p50": figures["stages_ms"]["infer_ms"].get("p50"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.watermark_pipeline", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/watermark_pipeline.json"))
    parser.add_argument("--rounds", type=int, default=3, help="pairs of runs, with and without the mark")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each run")
    parser.add_argument("--quick", action="store_true", help="1 round of 4 s")
    args = parser.parse_args(argv)
    rounds, seconds = (1, 4.0) if args.quick else (args.rounds, args.seconds)
    face_path, speech = demo_face_and_speech()
    speech = speech_like(8.0) if speech is None else speech
    import cv2

    face = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(face_path)), cv2.COLOR_BGR2RGB), np.uint8)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = bench_weights(None, Path(tmp))
        for r in range(rounds):
            for marked in (True, False):
                row = one_run(weights, speech, face, seconds, marked)
                runs.append({"name": f"round {r + 1} {'with' if marked else 'without'} mark", **row})
                print(
                    f"round {r + 1}/{rounds} {'with' if marked else 'without'} the mark:"
                    f" {row['fps']:.2f} fps, {row['late_frames']} late of {row['frames_out']},"
                    f" load {row['load_average_1min']:.1f}",
                    flush=True,
                )
    figures: dict[str, Any] = {"weights": kind, "resolution": "720p", "seconds_per_run": seconds}
    for marked, name in ((True, "marked"), (False, "unmarked")):
        mine = [r for r in runs if r["marked"] == marked]
        figures[f"{name}.fps_min"] = min(r["fps"] for r in mine)
        figures[f"{name}.late_frames_total"] = sum(r["late_frames"] for r in mine)
        figures[f"{name}.runs_with_0_late"] = sum(r["late_frames"] == 0 for r in mine)
        figures[f"{name}.runs"] = len(mine)
        figures[f"{name}.composite_ms_p50_median"] = float(np.median([r["composite_ms_p50"] for r in mine]))
    figures["load_average_1min_mean"] = float(np.mean([r["load_average_1min"] for r in runs]))
    figures["runs"] = runs
    figures["samples"] = {
        "late frames per run, with the mark": [r["late_frames"] for r in runs if r["marked"]],
        "late frames per run, without": [r["late_frames"] for r in runs if not r["marked"]],
    }
    figures["samples_unit"] = f"late frames of {int(seconds * 25)}"
    write_result(args.out, "watermark_pipeline", figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
