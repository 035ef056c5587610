"""Enroll on real faces: does a personal model beat the shipped weights on the person's own face?

`python -m stablesync.benchmarks.enroll --out benchmarks/out/enroll.json [--data DIR] [--quick] [--minutes M]
[--steps N] [--only NAME] [--timing-s 60] [--seed S] [--reference-views N] [--also-views N]` (part of
`stablesync bench`). `--data` defaults to `../shared/real` beside the project; without it the
benchmark says so in one line and writes nothing else. Those videos are never part of the project:
every take, profile and fine-tuned weight made from them lives in a temporary folder that is deleted
when the clip is done; only figures are written.

Per video: `stablesync enroll` (`stablesync.enroll.pipeline.enroll`, `--minutes` of training,
its own 15% hold-out not rendered) on the first 70% of the clip; then the remaining 30%,
re-dubbed with its own audio, is rendered with the personal profile and with the shipped
weights and compared with the real frames (`stablesync.enroll.validate.compare`: mouth PSNR,
SSIM, LMD, r(output opening, real opening), teal frames, and the real-face benchmark's other
measures). The same 30% is also driven by another recording (`speech/en_radio_8s.wav` of
`--data`, from its start) with both weights and measured as the real-face benchmark measures its
cross-dubbed cases (`real_faces.measure_case`): `r_new` / `r_own`, the best r (within +-3 frames)
of the output's mouth opening with the new speech's envelope and with the video's own, and the
frame measures (teal frames, lips' sharpness, PSNR above the nostrils, straight edges).
`--reference-views N` fine-tunes each profile on references drawn from N shifted views (the
profile then averages them; enroll's default is 1) and `--also-views N` also renders the same
profile averaging N views. Enroll wall time and the process's peak memory are reported per clip;
`--timing-s S` also enrolls a take of S seconds (the first clip's 70% repeated back and forth) to time it.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.export.manifest import MAX_REFERENCE_VIEWS

if TYPE_CHECKING:
    from stablesync.enroll.validate import Segment

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "real"
RATE_HZ = 16_000
ENROLL_FRACTION = 0.7
KEYS = ("mouth_psnr_db", "mouth_ssim", "lmd", "r_real", "amplitude_ratio", "teal_frames", "upper_psnr_db")
MORE_KEYS = ("sharpness_ratio", "straight_edge_frac", "lip_synced_frames")
CROSS_SPEECH = "en_radio_8s.wav"  # the other recording the held-out frames are also driven by
CROSS_KEYS = ("r_new", "r_own", "teal_frames", "sharpness_ratio", "upper_psnr_db", "straight_edge_frac")


class Variant(TypedDict):
    """The fine-tune's settings a run varies (`EnrollConfig` fields; None: enroll's default)."""

    seed: int
    cross_sync: float | None
    reference_views: int | None


DEFAULT_VARIANT = Variant(seed=0, cross_sync=None, reference_views=None)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_take(path: Path, frames: list[NDArray[np.uint8]], fps: float, audio: NDArray[np.float32]) -> Path:
    from stablesync.media import Mp4Writer

    h, w = frames[0].shape[:2]
    writer = Mp4Writer(path, fps, (w // 2 * 2, h // 2 * 2), audio_rate_hz=RATE_HZ)
    for image in frames:
        writer.write(image[: h // 2 * 2, : w // 2 * 2])
    writer.close(audio)
    return path


def enroll_take(
    take: Path,
    audio: NDArray[np.float32],
    scratch: Path,
    minutes: float,
    steps: int = 0,
    validate_s: float = 0.0,
    variant: Variant = DEFAULT_VARIANT,
) -> tuple[Path, float]:
    """Enrolls `take` into a profile under `scratch` (`steps` > 0: that many training steps
    instead of the `minutes` budget; `validate_s` > 0: enroll's own validation on the held-aside
    part, as `stablesync enroll` runs it); -> (profile folder, wall seconds)."""
    from stablesync.enroll.pipeline import EnrollConfig, enroll
    from stablesync.enroll.profiles import profile_dir

    old = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(scratch / "data")
    try:
        start = time.perf_counter()
        config = EnrollConfig(
            name="bench",
            video=take,
            audio=audio,
            minutes=minutes,
            steps=steps,
            validate_s=validate_s,
            **variant,
        )
        enroll(config)
        return profile_dir("bench"), time.perf_counter() - start
    finally:
        if old is None:
            os.environ.pop("XDG_DATA_HOME", None)
        else:
            os.environ["XDG_DATA_HOME"] = old


def cross_driven(segment: Segment, speech: NDArray[np.float32], weights: dict[str, Path]) -> dict[str, Any]:
    """`segment`'s frames driven by `speech` (from its start) with each of `weights`: the
    real-face benchmark's cross-dub measures, and per measure whether the personal model does at
    least as well as the shipped weights (`enroll.validate.better`)."""
    from stablesync.benchmarks.offline_render import BENCH_RUN_ID, render_offline
    from stablesync.benchmarks.real_faces import measure_case
    from stablesync.enroll.validate import better

    driven = np.zeros(len(segment.audio), np.float32)
    driven[: min(len(speech), len(driven))] = speech[: len(driven)]
    out: dict[str, Any] = {}
    for name, folder in weights.items():
        rendered = render_offline(str(folder), segment.frames, segment.pts_s, driven, run_id=BENCH_RUN_ID)
        figures, _ = measure_case(
            "crossdub", segment.frames, rendered.images, segment.pts_s, driven, segment.audio
        )
        out[name] = {k: float(figures[k]) for k in CROSS_KEYS}
        out[name]["margin"] = out[name]["r_new"] - out[name]["r_own"]
    out["personal_at_least_as_good"] = better(out["personal"], out["shipped"])
    return out


def with_views(profile: Path, views: int, scratch: Path) -> Path:
    """A copy of `profile` whose sessions average `views` reference views (its manifest's
    `reference_views` changed), to measure one fine-tune at another view count."""
    import json
    import shutil

    copy = scratch / f"profile_{views}_views"
    shutil.copytree(profile, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["reference_views"] = views
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


def run_clip(
    video: Path,
    minutes: float,
    steps: int = 0,
    other_speech: Path | None = None,
    variant: Variant = DEFAULT_VARIANT,
    also_views: int = 0,
) -> dict[str, Any]:
    """Personal vs shipped on `video`'s last 30% (`also_views` > 0: the personal profile also
    measured averaging that many reference views, under "personal_views")."""
    from stablesync.benchmarks.offline_render import BENCH_RUN_ID
    from stablesync.enroll.pipeline import SHIPPED_DIR
    from stablesync.enroll.validate import compare, read_segment
    from stablesync.media import read_audio

    audio = read_audio(video, RATE_HZ)
    whole = read_segment(video, audio, 0.0, 1e9, max_side=10_000)
    cut = int(ENROLL_FRACTION * len(whole.frames))
    with tempfile.TemporaryDirectory(prefix="stablesync-enroll-bench-") as tmp:
        scratch = Path(tmp)
        cut_s = whole.pts_s[cut]
        take = write_take(
            scratch / "take.mp4", whole.frames[:cut], whole.fps, audio[: round(cut_s * RATE_HZ)]
        )
        profile, wall_s = enroll_take(
            take, audio[: round(cut_s * RATE_HZ)], scratch, minutes, steps, variant=variant
        )
        rest = read_segment(video, audio, cut_s, 1e9)
        report = compare(profile, SHIPPED_DIR, rest, BENCH_RUN_ID).report
        cross = None
        if other_speech is not None:
            speech = read_audio(other_speech, RATE_HZ)
            cross = cross_driven(rest, speech, {"personal": profile, "shipped": SHIPPED_DIR})
            cross = {"speech": other_speech.name, **cross}
        other_views = None
        if also_views > 0:
            copy = with_views(profile, also_views, scratch)
            personal = compare(copy, SHIPPED_DIR, rest, BENCH_RUN_ID).report["personal"]
            other_views = {"views": also_views, **personal}
            if other_speech is not None:
                speech = read_audio(other_speech, RATE_HZ)
                driven = cross_driven(rest, speech, {"personal": copy, "shipped": SHIPPED_DIR})
                other_views["cross_driven"] = driven["personal"]
        plan = (profile / "profile.json").read_text()
    import json

    info = json.loads(plan)
    out: dict[str, Any] = {
        "enroll_s": round(cut_s, 2),
        "evaluated_s": report["held_out_s"],
        "steps": info["steps"],
        "step_s": info["step_s"],
        "enroll_wall_s": round(wall_s, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
    }
    for weights in ("personal", "shipped"):
        out[weights] = {k: report[weights].get(k) for k in KEYS + MORE_KEYS}
    out["personal_at_least_as_good"] = report["personal_at_least_as_good"]
    out["reference_views"] = info.get("reference_views", 1)
    if other_views is not None:
        out["personal_views"] = {k: other_views.get(k) for k in ("views", *KEYS, *MORE_KEYS, "cross_driven")}
    if cross is not None:
        out["cross_driven"] = cross
    return out


def run_timing(video: Path, seconds: float, minutes: float) -> dict[str, Any]:
    """Enroll wall time and peak memory for a take of `seconds` (the clip's first 70% looped), the
    whole of `stablesync enroll` with its defaults: preparation, training, validation, export."""
    from stablesync.enroll.pipeline import EnrollConfig
    from stablesync.enroll.validate import read_segment
    from stablesync.media import read_audio

    audio = read_audio(video, RATE_HZ)
    whole = read_segment(video, audio, 0.0, 1e9, max_side=10_000)
    cut = int(ENROLL_FRACTION * len(whole.frames))
    order = list(range(cut)) + list(range(cut - 2, 0, -1))  # back and forth: no jump
    n = round(seconds * whole.fps)
    frames = [whole.frames[order[i % len(order)]] for i in range(n)]
    step = RATE_HZ / whole.fps
    sound = np.concatenate(
        [whole.audio[round(order[i % len(order)] * step) :][: round(step)] for i in range(n)]
    )
    with tempfile.TemporaryDirectory(prefix="stablesync-enroll-bench-") as tmp:
        scratch = Path(tmp)
        take = write_take(scratch / "take.mp4", frames, whole.fps, sound.astype(np.float32))
        del frames
        validate_s = EnrollConfig.validate_s
        _, wall_s = enroll_take(take, sound.astype(np.float32), scratch, minutes, validate_s=validate_s)
    return {
        "footage_s": seconds,
        "minutes": minutes,
        "validate_s": validate_s,
        "enroll_wall_s": round(wall_s, 1),
        "peak_rss_mb": _peak_rss_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.enroll", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/enroll.json"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="one video, half a minute of training")
    parser.add_argument("--minutes", type=float, default=None, help="training budget per clip (default 6)")
    parser.add_argument(
        "--steps", type=int, default=0, help="this many training steps per clip instead of --minutes"
    )
    parser.add_argument("--only", default=None, help="the videos whose name contains this")
    parser.add_argument(
        "--timing-s", type=float, default=0.0, help="also time an enroll of this much footage"
    )
    parser.add_argument(
        "--timing-only", action="store_true", help="with --timing-s: the timing alone, no clip compared"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the fine-tune's seed (several: run-to-run spread)"
    )
    parser.add_argument(
        "--cross-sync",
        type=float,
        default=None,
        help="weight of L_ss on other moments' speech (default enroll's)",
    )
    parser.add_argument(
        "--reference-views",
        type=int,
        default=None,
        help="views the fine-tune draws references from and the profile averages (default enroll's)",
    )
    parser.add_argument(
        "--also-views",
        type=int,
        default=0,
        help="also measure each profile averaging this many reference views",
    )
    args = parser.parse_args(argv)
    variant = Variant(seed=args.seed, cross_sync=args.cross_sync, reference_views=args.reference_views)
    if args.reference_views is not None and not 1 <= args.reference_views <= MAX_REFERENCE_VIEWS:
        parser.error(f"--reference-views {args.reference_views}: expected 1 to {MAX_REFERENCE_VIEWS}")
    if args.also_views and not 1 <= args.also_views <= MAX_REFERENCE_VIEWS:
        parser.error(f"--also-views {args.also_views}: expected 1 to {MAX_REFERENCE_VIEWS}")
    if args.timing_only and args.timing_s <= 0:
        parser.error("--timing-only needs --timing-s SECONDS")
    # SIGTERM (the suite's time limit) unwinds like Ctrl-C, so the scratch folder is deleted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    videos_dir = args.data / "videos"
    if not videos_dir.is_dir():
        print(f"enroll: skipped: no real videos at {videos_dir} (pass --data DIR)")
        return 0
    videos = sorted(videos_dir.glob("*.mp4"))
    if args.only:
        videos = [v for v in videos if args.only in v.name]
    if args.quick:
        videos = videos[:1]
    minutes = args.minutes or (0.5 if args.quick else 6.0)
    results: dict[str, Any] = {"minutes": minutes, "steps": args.steps, **variant, "clips": {}}
    other = args.data / "speech" / CROSS_SPEECH
    for video in [] if args.timing_only else videos:
        results["clips"][video.stem] = run_clip(
            video, minutes, args.steps, other if other.exists() else None, variant, args.also_views
        )
        print(video.stem, results["clips"][video.stem], flush=True)
        write_result(args.out, "enroll", results)
    if args.timing_s > 0 and videos:
        results["timing"] = run_timing(videos[0], args.timing_s, minutes)
        print("timing", results["timing"], flush=True)
    path = write_result(args.out, "enroll", results)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
