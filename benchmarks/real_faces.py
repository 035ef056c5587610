"""Real faces: does the output look like the person, and does the mouth follow the speech?

`python -m stablesync.benchmarks.real_faces --out benchmarks/results/real_faces.json [--data DIR] [--quick]`
(part of `stablesync bench`). `--data` defaults to `../shared/real` beside the project; when it
is absent the benchmark says so in one line and writes nothing. Those files are never part of
the project: the contact sheets made from them go to `<out folder>/real_faces/`, which git ignores.

Cases (the offline session of `stablesync run --fast`, every frame compared with its source):
- redub: each video driven by its own audio track;
- crossdub: each video driven by another recording (the next video's track, or `en_radio_8s.wav`);
- photo: each photo driven by two recordings (`en_a_5s.wav`, `fr_7s.wav`);
- demo: the bundled demo face and speech.
Measures (`stablesync.evaluation.real_face` defines the per-frame ones; face height = forehead
to chin):
- redub `r_real` / `amplitude_ratio`: Pearson r of the output's mouth opening with the source's,
  and the ratio of their standard deviations; `r_real_envelope`, the best r (within +-3 frames)
  of the source's own opening with its own speech envelope, is what a mouth that follows the
  speech's loudness can reach at most in the same sense (a reference, not a target);
- crossdub `r_new` / `r_own`: best r (within +-3 frames) of the output's opening with the new
  speech's envelope and with the video's own speech envelope (should be low);
- photo and demo `opening_std` (face heights) and `r_speech` (best r with the envelope);
- every case: `sharpness_ratio` (median over frames), `upper_psnr_db` (minimum), `straight_edge_frac`
  (maximum over frames, face heights; `straight_edge_frac_with_jaw` the same with the jaw line's
  sweep counted, the measure's first definition), `teal_frames` (frames with teal_share > 1%), and
  `silence_opening` (mean opening over frames whose driving speech envelope is below 10% of its
  95th percentile) against `rest_opening` (the source's 10th-percentile opening; 0 for photos).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.benchmarks.inputs import demo_face_and_speech

RATE_HZ = 16_000
DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "real"
PHOTO_SPEECH = ("en_a_5s.wav", "fr_7s.wav")
CROSS_SPEECH = "en_radio_8s.wav"
Frames = list[NDArray[np.uint8]]


def _read_video(path: Path, max_s: float) -> tuple[Frames, list[float]]:
    from stablesync.media import iter_video_frames

    frames, pts = [], []
    for image, t_s in iter_video_frames(path):
        if t_s > max_s:
            break
        frames.append(image)
        pts.append(t_s)
    start = pts[0] if pts else 0.0
    return frames, [t - start for t in pts]


def _landmarks(frames: Frames) -> list[NDArray[np.float32] | None]:
    from stablesync.face import open_tracker

    tracker = open_tracker(video=True)
    out: list[NDArray[np.float32] | None] = []
    try:
        for image in frames:
            faces = tracker.detect(image)
            out.append(faces[0].points if faces else None)
    finally:
        tracker.close()
    return out


def _best_r(opening: NDArray[np.float64], envelope: NDArray[np.float64]) -> float:
    from stablesync.evaluation.av_sync import lagged_correlation

    rs = [lagged_correlation(opening, envelope, k) for k in range(-3, 4)]
    finite = [r for r in rs if np.isfinite(r)]
    return max(finite) if finite else float("nan")


def _envelope(audio: NDArray[np.float32], pts_s: list[float]) -> NDArray[np.float64]:
    from stablesync.data.quality import speech_envelope

    fps = (len(pts_s) - 1) / max(pts_s[-1] - pts_s[0], 1e-6) if len(pts_s) > 1 else 25.0
    return speech_envelope(audio, RATE_HZ, fps, len(pts_s))


def measure_case(
    name: str,
    source: Frames,
    output: Frames,
    pts_s: list[float],
    audio: NDArray[np.float32],
    own_audio: NDArray[np.float32] | None,
) -> tuple[dict[str, Any], list[int]]:
    """The case's figures, and the frames to show (largest output opening first)."""
    from stablesync.evaluation.mouth import correlation
    from stablesync.evaluation.real_face import measure_frame

    src_pts, out_pts = _landmarks(source), _landmarks(output)
    per = [measure_frame(s, o, sp, op) for s, o, sp, op in zip(source, output, src_pts, out_pts, strict=True)]
    valid = [m for m in per if m is not None]
    o_src = np.array([m.opening_source if m else np.nan for m in per])
    o_out = np.array([m.opening_output if m else np.nan for m in per])
    env = _envelope(audio, pts_s)
    quiet = env < 0.1 * np.percentile(env, 95)
    figures: dict[str, Any] = {
        "frames": len(source),
        "face_frames": len(valid),
        "output_face_frames": int(np.isfinite(o_out).sum()),
        "sharpness_ratio": float(np.median([m.sharpness_ratio for m in valid])),
        "upper_psnr_db": float(min(m.upper_psnr_db for m in valid)),
        "straight_edge_frac": float(max(m.straight_edge_frac for m in valid)),
        "straight_edge_frac_with_jaw": float(max(m.straight_edge_frac_with_jaw for m in valid)),
        "teal_frames": int(sum(m.teal_share > 0.01 for m in valid)),
        "opening_std": float(np.nanstd(o_out)),
        "source_opening_std": float(np.nanstd(o_src)),
        "silence_frames": int(quiet.sum()),
        "silence_opening": float(np.nanmean(o_out[quiet])) if quiet.any() else float("nan"),
        "rest_opening": float(np.nanpercentile(o_src, 10)),
        "r_speech": _best_r(o_out, env),
    }
    if name.startswith("redub"):
        figures["r_real"] = correlation(o_out, o_src)
        figures["amplitude_ratio"] = float(np.nanstd(o_out) / max(np.nanstd(o_src), 1e-9))
        figures["r_real_envelope"] = _best_r(o_src, env)
    if own_audio is not None:
        figures["r_new"] = figures["r_speech"]
        figures["r_own"] = _best_r(o_out, _envelope(own_audio, pts_s))
    order = np.argsort(-np.nan_to_num(o_out, nan=-1.0))
    picks = sorted(
        {
            int(order[0]),
            int(order[len(order) // 3]),
            int(np.argmin(np.nan_to_num(o_out, nan=9))),
            len(order) // 2,
        }
    )
    return figures, picks


def contact_sheet(source: Frames, output: Frames, picks: list[int], path: Path) -> None:
    """Source above output for each picked frame, and the mouth region enlarged beside."""
    import cv2

    from stablesync.face import open_tracker
    from stablesync.face.landmarks import MOUTH_OUTER

    columns = []
    tracker = open_tracker(video=False)
    try:
        for i in picks:
            src, out = source[i], output[i]
            scale = 320 / src.shape[0]
            whole = np.vstack(
                [cv2.resize(src, None, fx=scale, fy=scale), cv2.resize(out, None, fx=scale, fy=scale)]
            )
            faces = tracker.detect(src)
            if faces:
                ring = faces[0].points[list(MOUTH_OUTER), :2]
                c, half = ring.mean(0), max(np.ptp(ring[:, 0]), np.ptp(ring[:, 1]) * 2) * 0.9
                x0, y0 = (np.maximum(c - half, 0)).astype(int)
                x1, y1 = (c + half).astype(int)
                zoom = [
                    cv2.resize(im[y0:y1, x0:x1], (whole.shape[0] // 2, whole.shape[0] // 2))
                    for im in (src, out)
                ]
                whole = np.hstack([whole, np.vstack(zoom)])
            columns.append(whole)
    finally:
        tracker.close()
    height = max(c.shape[0] for c in columns)
    sheet = np.hstack([np.pad(c, ((0, height - c.shape[0]), (0, 4), (0, 0))) for c in columns])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def _photo_frames(path: Path, seconds: float) -> tuple[Frames, list[float]]:
    from stablesync.realtime.local.sources import load_image

    image = load_image(path)
    n = int(seconds * 25)
    return [image] * n, [i / 25 for i in range(n)]


def cases(data: Path, quick: bool) -> list[tuple[str, Path, Path | None, bool]]:
    """(name, face file, driving audio file or None for its own track, cross)."""
    videos = sorted((data / "videos").glob("*.mp4"))
    photos = sorted((data / "photos").glob("*.png"))
    speech = data / "speech"
    if quick:
        videos, photos = videos[:2], photos[:1]
    out: list[tuple[str, Path, Path | None, bool]] = []
    for k, v in enumerate(videos):
        out.append((f"redub/{v.stem}", v, None, False))
        other = videos[(k + 1) % len(videos)] if len(videos) > 1 else speech / CROSS_SPEECH
        out.append((f"crossdub/{v.stem}<-{other.stem}", v, other, True))
    for p in photos:
        for s in PHOTO_SPEECH[: 1 if quick else 2]:
            out.append((f"photo/{p.stem}<-{Path(s).stem}", p, speech / s, False))
    face, _ = demo_face_and_speech()
    out.append(("demo/face<-speech", face, face.with_name("speech.wav"), False))
    return out


def run_case(
    weights: str | None, name: str, face: Path, driver: Path | None, cross: bool, sheets: Path
) -> dict[str, Any]:
    from stablesync.benchmarks.offline_render import BENCH_RUN_ID, render_offline
    from stablesync.media import read_audio

    max_s = 6.0
    if face.suffix == ".mp4":
        frames, pts = _read_video(face, max_s)
        still = False
    else:
        frames, pts = _photo_frames(face, 6.0)
        still = True
    audio = read_audio(driver if driver is not None else face, RATE_HZ)
    own = read_audio(face, RATE_HZ) if cross else None
    rendered = render_offline(weights, frames, pts, audio, still=still, run_id=BENCH_RUN_ID)
    figures, picks = measure_case(name, frames, rendered.images, pts, audio, own)
    figures["lipsync_frames"] = sum(m == "lipsync" for m in rendered.modes)
    figures["mouth_shape_unread"] = rendered.counts.get("mouth_shape_unread", 0)
    contact_sheet(
        frames, rendered.images, picks, sheets / f"{name.replace('/', '_').replace('<-', '_from_')}.png"
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.real_faces", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/real_faces.json"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="two videos and one photo")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    if not (args.data / "videos").is_dir():
        reason = f"no real media at {args.data} (pass --data DIR)"
        print(f"real_faces: skipped: {reason}")
        if not args.out.exists():  # a result measured earlier is kept
            write_result(args.out, "real_faces", {"skipped": reason})
        return 0
    sheets = args.out.parent / "real_faces"
    results: dict[str, Any] = {}
    for name, face, driver, cross in cases(args.data, args.quick):
        if args.only and args.only not in name:
            continue
        results[name] = run_case(args.weights, name, face, driver, cross, sheets)
        print(
            name,
            {k: round(v, 3) if isinstance(v, float) else v for k, v in results[name].items()},
            flush=True,
        )
    path = write_result(
        args.out, "real_faces", {"data": str(args.data), "cases": results, "summary": summarise(results)}
    )
    print(f"real_faces: wrote {path}; contact sheets in {sheets}")
    return 0


def summarise(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each target's worst case (or mean where the target is on average)."""

    def values(prefix: str, key: str) -> list[float]:
        return [float(r[key]) for n, r in results.items() if n.startswith(prefix) and key in r]

    def mean(xs: list[float]) -> float:
        return float(np.nanmean(xs)) if xs else float("nan")

    every = list(results.values())
    margin = [r["r_new"] - r["r_own"] for r in every if "r_new" in r]
    return {
        "sharpness_ratio_min": min((r["sharpness_ratio"] for r in every), default=float("nan")),
        "upper_psnr_db_min": min((r["upper_psnr_db"] for r in every), default=float("nan")),
        "straight_edge_frac_max": max((r["straight_edge_frac"] for r in every), default=float("nan")),
        "straight_edge_frac_with_jaw_max": max(
            (r.get("straight_edge_frac_with_jaw", float("nan")) for r in every), default=float("nan")
        ),
        "teal_frames_total": sum(r["teal_frames"] for r in every),
        "redub_r_real_mean": mean(values("redub", "r_real")),
        "redub_amplitude_ratio_mean": mean(values("redub", "amplitude_ratio")),
        "redub_r_real_envelope_mean": mean(values("redub", "r_real_envelope")),
        "crossdub_r_new_mean": mean(values("crossdub", "r_new")),
        "crossdub_margin_mean": mean(margin),
        "photo_opening_std_min": min(values("photo", "opening_std"), default=float("nan")),
        "photo_r_speech_mean": mean(values("photo", "r_speech")),
    }


if __name__ == "__main__":
    sys.exit(main())
