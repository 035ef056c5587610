"""Glass-to-glass latency and A/V offset measured from OUTSIDE the pipeline.

`python -m stablesync.benchmarks.latency_probe --out benchmarks/out/latency_probe.json [--quick] [--weights
DIR]`

The probe feeds speech bursts after silence (syllables that open the mouth, synthesised with
espeak-ng) and the demo face through the real inputs (an audio file paced in real time and a
photo), and watches the real outputs: a virtual camera driven through pyvirtualcam's own backend
registry (the backend only notes when each frame arrives) and the mp4 file sink. Afterwards it
tracks the mouth in the output video with mediapipe and, for every burst:

- finds the sound onset in the input samples (first 10 ms frame louder than 10% of the burst's
  peak) and the instant that sample entered the pipeline (when its chunk was handed in);
- finds the visible mouth response: the first output frame whose mouth opening rises halfway
  from its level in the silence before to its peak during the burst (no response is reported
  as such, e.g. with untrained weights);
- glass-to-glass (outside) = arrival of that frame at the camera - the onset's entry instant;
- A/V offset in the file = the frame's time in the mp4 - the onset's time in the mp4's own
  audio track (positive: the mouth moves after the sound is heard).

Why it differs from the pipeline's own telemetry (capture instant of a frame -> hand-off):
the outside figure also holds the model's timing (a model with look-ahead opens the mouth on a
frame captured before the sound; a slow one after), which is exactly the file's A/V offset.
So outside ~= telemetry latency + A/V offset; the JSON reports the residual.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech

RATE_HZ = 16_000
SYLLABLES = ("pa pa", "ma ma", "ba ba", "papa", "mama")
BACKEND = "stablesync-latency-probe"


def probe_audio(bursts: int, gap_s: float) -> tuple[NDArray[np.float32], list[float]]:
    """Silence then a syllable, `bursts` times; returns samples and each onset (s), measured."""
    from stablesync.audio import resample
    from stablesync.data.espeak import EspeakSynth

    synth = EspeakSynth()
    parts, onsets, at = [], [], 0
    for i in range(bursts):
        u = synth.synthesise(SYLLABLES[i % len(SYLLABLES)], "en-us", rate_wpm=140, pitch=50)
        word = resample(u.samples.astype(np.float32) / 32768.0, u.sample_rate_hz, RATE_HZ)
        gap = np.zeros(int(gap_s * RATE_HZ), np.float32)
        parts += [gap, word]
        onset = sound_onsets(word, 0.0)
        onsets.append((at + gap.size) / RATE_HZ + (onset[0] if onset else 0.0))
        at += gap.size + word.size
    parts.append(np.zeros(int(gap_s * RATE_HZ), np.float32))
    return np.concatenate(parts), onsets


def sound_onsets(samples: NDArray[np.float32], min_gap_s: float = 0.5) -> list[float]:
    """Onsets (s) of sound after at least `min_gap_s` of quiet: 10 ms RMS above 10% of the peak."""
    hop = RATE_HZ // 100
    n = samples.size // hop
    if n == 0:
        return []
    rms = np.sqrt((samples[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    loud = rms > 0.1 * rms.max()
    onsets, quiet_run = [], int(min_gap_s * 100)
    for i in range(n):
        if loud[i] and quiet_run >= int(min_gap_s * 100):
            onsets.append(i * hop / RATE_HZ)
        quiet_run = 0 if loud[i] else quiet_run + 1
    return onsets


@dataclass
class ArrivalLog:
    """When each frame reached the virtual camera (monotonic ns), in order."""

    arrivals_ns: list[int] = field(default_factory=list)


def register_arrival_backend(log: ArrivalLog) -> None:
    import pyvirtualcam

    class ArrivalCamera:
        def __init__(
            self, *, width: int, height: int, fps: float, fourcc: int, device: Any, **kw: Any
        ) -> None:
            self.fourcc = fourcc

        def close(self) -> None:
            pass

        def send(self, frame: Any) -> None:
            log.arrivals_ns.append(time.monotonic_ns())

        def device(self) -> str:
            return "latency-probe"

        def native_fourcc(self) -> Any:
            return None

    pyvirtualcam.register_backend(BACKEND, ArrivalCamera)


class HandInAudio:
    """The paced file source, with the moment each chunk was handed to the pipeline noted."""

    def __init__(self, samples: NDArray[np.float32]) -> None:
        from stablesync.realtime.local.sources import AudioFileSource

        self.inner = AudioFileSource(samples, RATE_HZ)
        self.handed: list[tuple[int, int, int]] = []  # (first sample, sample count, monotonic ns)

    async def run(self, emit: Any, clock: Any) -> None:
        async def noted(chunk: Any) -> None:
            first = round(chunk.pts_ns * RATE_HZ / 1e9)
            self.handed.append((first, chunk.samples.shape[0], time.monotonic_ns()))
            await emit(chunk)

        await self.inner.run(noted, clock)

    def entry_ns(self, t_s: float) -> int:
        """When the sample at `t_s` entered: its chunk's hand-in less the samples after it."""
        index = int(t_s * RATE_HZ)
        for first, count, at_ns in self.handed:
            if first <= index < first + count:
                return at_ns - int((first + count - index) * 1e9 / RATE_HZ)
        raise ValueError(f"no chunk holds t={t_s:.3f} s")


def response_frame(
    pts: NDArray[np.float64], opening: NDArray[np.float64], onset_s: float, min_rise: float = 0.03
) -> int | None:
    """Index of the first frame rising halfway from the silence before to the burst's peak."""
    before = opening[(pts >= onset_s - 0.6) & (pts < onset_s - 0.2)]
    during = (pts >= onset_s - 0.2) & (pts < onset_s + 0.6)
    if before.size == 0 or not during.any() or np.all(np.isnan(opening[during])):
        return None
    base, peak = float(np.nanmedian(before)), float(np.nanmax(opening[during]))
    if not np.isfinite(base) or peak - base < min_rise:
        return None
    above = np.flatnonzero(during & (opening >= base + 0.5 * (peak - base)))
    return int(above[0]) if above.size else None


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "n": len(values),
    }


async def _run(weights: Path, face: Path, samples: NDArray[np.float32], work: Path) -> tuple[Any, Any]:
    from stablesync.realtime.local.runner import RunConfig, Runner
    from stablesync.realtime.local.sinks import VirtualCameraConfig
    from stablesync.realtime.local.sources import ImageSource, load_image
    from stablesync.realtime.pipeline.loading import open_engine

    engine = open_engine(weights, "auto")
    seconds = samples.size / RATE_HZ
    audio = HandInAudio(samples)
    video = ImageSource(load_image(face), engine.manifest.fps, duration_s=seconds)
    cfg = RunConfig(
        out_path=work / "probe.mp4",
        fps=engine.manifest.fps,
        live_status=False,
        virtual_camera=VirtualCameraConfig(fps=engine.manifest.fps, backend=BACKEND),
    )
    result = await Runner(engine, video, audio, cfg, paced=True).run()
    return result, audio


def measure(weights: Path, face: Path, bursts: int, gap_s: float, work: Path) -> dict[str, Any]:
    from stablesync.evaluation.av_sync import mouth_series
    from stablesync.media import read_audio

    samples, onsets = probe_audio(bursts, gap_s)
    log = ArrivalLog()
    register_arrival_backend(log)
    result, audio = asyncio.run(_run(weights, face, samples, work))
    if result.error:
        raise RuntimeError(result.error)
    video = work / "probe.mp4"
    pts, opening = mouth_series(video)
    out_onsets = sound_onsets(read_audio(video))
    outside, file_offset, per_burst = [], [], []
    for onset_s in onsets:
        k = response_frame(pts, opening, onset_s)
        row: dict[str, Any] = {"onset_s": round(onset_s, 3), "response": k is not None}
        if k is not None and k < len(log.arrivals_ns):
            row["glass_to_glass_ms"] = (log.arrivals_ns[k] - audio.entry_ns(onset_s)) / 1e6
            outside.append(row["glass_to_glass_ms"])
            heard = [t for t in out_onsets if abs(t - onset_s) < 0.3]
            if heard:
                row["av_offset_ms"] = (pts[k] - heard[0]) * 1000.0
                file_offset.append(row["av_offset_ms"])
        per_burst.append(row)
    telemetry = result.telemetry.summary()
    inside = telemetry["glass_to_glass_ms"]
    residual = None
    if outside and file_offset and inside.get("p50") is not None:
        residual = float(np.median(outside)) - float(np.median(file_offset)) - float(inside["p50"])
    return {
        "bursts": bursts,
        "responses": sum(r["response"] for r in per_burst),
        "outside_glass_to_glass_ms": _percentiles(outside),
        "file_av_offset_ms": _percentiles(file_offset),
        "telemetry_glass_to_glass_ms": inside,
        "residual_ms": residual,
        "frames_at_camera": len(log.arrivals_ns),
        "per_burst": per_burst,
        "samples": {"outside_g2g_ms": outside, "file_av_offset_ms": file_offset},
        "samples_unit": "ms",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.latency_probe", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/latency_probe.json"))
    parser.add_argument("--bursts", type=int, default=12)
    parser.add_argument("--gap-s", type=float, default=1.2)
    parser.add_argument("--quick", action="store_true", help="3 bursts")
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    face, _ = demo_face_and_speech()
    with tempfile.TemporaryDirectory() as tmp:
        weights, kind = bench_weights(args.weights, Path(tmp))
        figures = measure(weights, face, 3 if args.quick else args.bursts, args.gap_s, Path(tmp))
    figures["weights"] = kind
    path = write_result(args.out, "latency_probe", figures)
    o, f = figures["outside_glass_to_glass_ms"], figures["file_av_offset_ms"]
    inside = figures["telemetry_glass_to_glass_ms"].get("p50")
    print(
        f"mouth responses {figures['responses']}/{figures['bursts']};"
        f" outside glass-to-glass p50 {o['p50']} ms;"
        f" file A/V offset p50 {f['p50']} ms; telemetry p50 {inside} ms; residual {figures['residual_ms']} ms"
        f" -> {path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
