"""The invisible watermark: invisibility, robustness, specificity and cost (issue 18).

Clips are 2 s of 640x480 at 25 fps: synthetic webcam stand-ins (the demo face or the Grace
Hopper photo moving over a random textured or flat background, by seed) and, when
`../shared/real/videos` exists, 2-s windows of the real talking-head videos there (read at run
time, centre-cropped to 4:3; nothing made from them is written). Each clip is detected marked
(a random run id per clip) and unmarked, after each transform: H.264 and VP8 at 0.5, 1 and
2 Mbit/s (PyAV's libx264 and libvpx), a rescale by 0.5x and 1.5x, and a 10% crop (the central
90% of each side, kept at that size).

Figures: PSNR of marked against unmarked frames; per transform, the share of marked clips
detected and with the exact payload; on unmarked clips, the false positives at the shipped
threshold and at a threshold chosen on the other half of the unmarked clips (the highest
score there, plus 0.5); the time to mark a 720p frame; the time `stablesync detect` takes for
a 10-s 640x480 and 720p H.264 clip. A contact sheet of a marked flat grey frame and of the
difference amplified 32x goes to `watermark_contact.png` beside the JSON.

`python -m stablesync.benchmarks.watermark --out benchmarks/results/watermark.json [--quick] [--clips N]`
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from stablesync.benchmarks.common import write_result
from stablesync.media import iter_video_frames
from stablesync.realtime.watermark import Detector, Watermarker

Image = NDArray[np.uint8]
Clip = list[Image]
SIZE = (640, 480)
FPS = 25
CLIP_FRAMES = 50
REAL_VIDEOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "real" / "videos"


def photos() -> list[Image]:
    """The demo face and, where matplotlib is installed, its Grace Hopper sample (RGB)."""
    import stablesync

    paths = [Path(stablesync.__file__).resolve().parent / "assets" / "demo" / "face.png"]
    try:
        import matplotlib

        paths.append(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg")
    except ImportError:
        pass
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths if p.is_file()]


def synthetic_clip(seed: int, faces: list[Image]) -> Clip:
    """A face (60-80% of the height) drifting over a textured, gradient or flat background."""
    rng = np.random.default_rng(seed)
    width, height = SIZE
    kind = seed % 3
    if kind == 0:
        noise = rng.uniform(0, 255, (height, width, 3)).astype(np.float32)
        blurred = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(2, 12)))
        background = np.clip((blurred - 127) * rng.uniform(2, 6) + 127, 0, 255)
    elif kind == 1:
        ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        low, high = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
        background = np.broadcast_to(low + (high - low) * ramp, (height, width, 3))
    else:
        background = np.broadcast_to(rng.uniform(30, 220, 3).astype(np.float32), (height, width, 3))
    background = background.astype(np.uint8)
    face = faces[seed % len(faces)]
    side = int(height * rng.uniform(0.6, 0.8))
    face = cv2.resize(face, (side * face.shape[1] // face.shape[0], side), interpolation=cv2.INTER_AREA)
    fh, fw = face.shape[:2]
    phase = rng.uniform(0, 2 * np.pi)
    clip = []
    for i in range(CLIP_FRAMES):
        frame = background.copy()
        x = (width - fw) // 2 + int(20 * np.sin(i / 7.0 + phase))
        y = (height - fh) // 2 + int(8 * np.cos(i / 11.0 + phase))
        x, y = min(max(x, 0), width - fw), min(max(y, 0), height - fh)
        frame[y : y + fh, x : x + fw] = face[: height - y, : width - x]
        clip.append(frame)
    return clip


def real_clips(limit: int) -> list[Clip]:
    """2-s windows of the real videos, centre-cropped to 4:3 and resized to 640x480."""
    clips: list[Clip] = []
    for path in sorted(REAL_VIDEOS.glob("*.mp4")):
        frames: Clip = []
        for image, _ in iter_video_frames(path):
            h, w = image.shape[:2]
            crop_h = min(h, w * 3 // 4)
            top = (h - crop_h) // 2
            frames.append(cv2.resize(image[top : top + crop_h], SIZE, interpolation=cv2.INTER_AREA))
        clips += [frames[i : i + CLIP_FRAMES] for i in range(0, len(frames) - CLIP_FRAMES + 1, CLIP_FRAMES)]
    return clips[:limit]


def codec(clip: Clip, name: str, bit_rate: int) -> Clip:
    """The clip through an encoder at a bit rate and back."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm" if name == "libvpx" else "mp4") as out:
        stream = out.add_stream(name, rate=FPS)
        stream.width, stream.height = clip[0].shape[1], clip[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
        for image in clip:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer) as container:
        # one conversion thread: PyAV otherwise starts a pool per converted frame
        return [f.reformat(format="rgb24", threads=1).to_ndarray() for f in container.decode(video=0)]


def rescale(factor: float) -> Callable[[Clip], Clip]:
    def apply(clip: Clip) -> Clip:
        size = (round(SIZE[0] * factor), round(SIZE[1] * factor))
        method = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
        return [cv2.resize(f, size, interpolation=method) for f in clip]

    return apply


def crop_10(clip: Clip) -> Clip:
    dy, dx = SIZE[1] // 20, SIZE[0] // 20
    return [np.ascontiguousarray(f[dy : SIZE[1] - dy, dx : SIZE[0] - dx]) for f in clip]


TRANSFORMS: dict[str, Callable[[Clip], Clip]] = {
    "none": lambda clip: clip,
    "h264_0.5mbit": lambda clip: codec(clip, "libx264", 500_000),
    "h264_1mbit": lambda clip: codec(clip, "libx264", 1_000_000),
    "h264_2mbit": lambda clip: codec(clip, "libx264", 2_000_000),
    "vp8_0.5mbit": lambda clip: codec(clip, "libvpx", 500_000),
    "vp8_1mbit": lambda clip: codec(clip, "libvpx", 1_000_000),
    "vp8_2mbit": lambda clip: codec(clip, "libvpx", 2_000_000),
    "rescale_0.5x": rescale(0.5),
    "rescale_1.5x": rescale(1.5),
    "crop_10pct": crop_10,
}


def detect_clip(detector: Detector, clip: Clip) -> tuple[float, str | None]:
    """(score z, run id read or None)."""
    ys = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in clip]
    detection = detector.detect(lambda: [(i / FPS, y) for i, y in enumerate(ys)])
    score = detection.overall
    if score is None:
        return 0.0, None
    return score.z, None if score.payload is None else score.payload.run_id_hex


def psnr_db(a: Image, b: Image) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def embed_ms(frames: int) -> tuple[float, float]:
    """Median wall and mean CPU (all threads) milliseconds to mark one 720p frame, the per-size
    pattern already built."""
    marker = Watermarker(run_id=1)
    image = cv2.resize(synthetic_clip(0, photos())[0], (1280, 720))
    marker.mark(image)
    wall, cpu = [], []
    for _ in range(frames):
        t0, c0 = time.perf_counter(), time.process_time()
        marker.mark(image)
        wall.append((time.perf_counter() - t0) * 1000.0)
        cpu.append((time.process_time() - c0) * 1000.0)
    return float(np.median(wall)), float(np.mean(cpu))


def detect_file_s(seconds: float, size: tuple[int, int], folder: Path) -> tuple[float, float]:
    """Wall and CPU seconds of `stablesync detect`'s analysis of an H.264 file (decode included)."""
    from stablesync.realtime.cli.detect import analyse

    marker = Watermarker(run_id=2)
    base = [cv2.resize(f, size) for f in synthetic_clip(3, photos())]
    path = folder / f"detect_{size[1]}p.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(int(seconds * FPS)):
            out.mux(
                stream.encode(av.VideoFrame.from_ndarray(marker.mark(base[i % len(base)]), format="rgb24"))
            )
        out.mux(stream.encode())
    t0, c0 = time.perf_counter(), time.process_time()
    entry = analyse(path, Detector())
    took = time.perf_counter() - t0, time.process_time() - c0
    if not entry["marked"]:
        print(f"warning: the {size[1]}p timing clip was not detected", file=sys.stderr)
    return took


def contact_sheet(path: Path) -> None:
    """Marked flat grey, the difference x32 on grey, and the same for a face frame, side by side."""
    marker = Watermarker(run_id=0x5AB1E)
    flat = np.full((SIZE[1], SIZE[0], 3), 128, np.uint8)
    face = synthetic_clip(1, photos())[0]
    tiles = []
    for image in (flat, face):
        marked = marker.mark(image)
        amplified = np.clip(128 + 32 * (marked.astype(np.int32) - image.astype(np.int32)), 0, 255)
        tiles += [marked, amplified.astype(np.uint8)]
    captions = ["marked flat grey (128)", "difference x32", "marked frame", "difference x32"]
    labelled = []
    for tile, caption in zip(tiles, captions, strict=True):
        tile = tile.copy()
        cv2.putText(tile, caption, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 4, cv2.LINE_AA)
        cv2.putText(tile, caption, (12, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 2, cv2.LINE_AA)
        labelled.append(tile)
    sheet = np.vstack([np.hstack(labelled[:2]), np.hstack(labelled[2:])])
    sheet = cv2.resize(sheet, (sheet.shape[1] // 2, sheet.shape[0] // 2), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def robustness(clips: list[Clip], detector: Detector, rng: np.random.Generator) -> dict[str, Any]:
    """Per transform: z of marked and unmarked clips, payloads read; PSNR of the marked frames."""
    marked_z: dict[str, list[float]] = {name: [] for name in TRANSFORMS}
    exact: dict[str, list[bool]] = {name: [] for name in TRANSFORMS}
    unmarked_z: dict[str, list[float]] = {name: [] for name in TRANSFORMS}
    psnrs = []
    for index, clip in enumerate(clips):
        marker = Watermarker(run_id=int(rng.integers(0, 2**32)))
        marked = [marker.mark(f) for f in clip]
        psnrs.append(float(np.mean([psnr_db(m, f) for m, f in zip(marked, clip, strict=True)])))
        for name, transform in TRANSFORMS.items():
            z, run_id = detect_clip(detector, transform(marked))
            marked_z[name].append(z)
            exact[name].append(run_id == marker.run_id_hex)
            unmarked_z[name].append(detect_clip(detector, transform(clip))[0])
        zs = " ".join(f"{v[-1]:.1f}" for v in marked_z.values())
        print(f"clip {index + 1}/{len(clips)}: marked z {zs}", flush=True)
    return {"marked_z": marked_z, "exact": exact, "unmarked_z": unmarked_z, "psnr_db": psnrs}


def summarise(raw: dict[str, Any], threshold: float) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "psnr_db_mean": float(np.mean(raw["psnr_db"])),
        "psnr_db_min": min(raw["psnr_db"]),
    }
    for name in TRANSFORMS:
        z = np.array(raw["marked_z"][name])
        figures[f"detected_pct.{name}"] = float(100.0 * np.mean(z >= threshold))
        figures[f"payload_exact_pct.{name}"] = float(100.0 * np.mean(raw["exact"][name]))
        figures[f"marked_z_min.{name}"] = float(z.min())
    unmarked = np.concatenate([raw["unmarked_z"][name] for name in TRANSFORMS])
    order = np.random.default_rng(0).permutation(len(unmarked))
    calibration, held_out = unmarked[order[: len(order) // 2]], unmarked[order[len(order) // 2 :]]
    chosen = float(calibration.max() + 0.5)
    figures["unmarked_clips"] = len(unmarked)
    figures["unmarked_z_max"] = float(unmarked.max())
    figures["unmarked_z_p99"] = float(np.percentile(unmarked, 99))
    figures["false_positive_pct_at_shipped_threshold"] = float(100.0 * np.mean(unmarked >= threshold))
    figures["threshold_chosen_on_half"] = chosen
    figures["false_positive_pct_other_half"] = float(100.0 * np.mean(held_out >= chosen))
    figures["shipped_threshold_z"] = threshold
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stablesync.benchmarks.watermark", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/watermark.json"))
    parser.add_argument("--clips", type=int, default=8, help="synthetic clips (plus up to 12 real ones)")
    parser.add_argument("--quick", action="store_true", help="1 synthetic clip, 1 real, short timings")
    args = parser.parse_args(argv)
    n_synthetic, n_real = (1, 1) if args.quick else (args.clips, 12)
    faces = photos()
    clips = [synthetic_clip(seed, faces) for seed in range(n_synthetic)]
    if REAL_VIDEOS.is_dir():
        real = real_clips(n_real)
        clips += real
    else:
        real = []
        print(f"{REAL_VIDEOS}: absent; synthetic clips only", file=sys.stderr)
    detector = Detector()
    raw = robustness(clips, detector, np.random.default_rng(18))
    figures = summarise(raw, detector.cfg.threshold_z)
    figures |= {"clips_synthetic": n_synthetic, "clips_real": len(real), "clip_s": CLIP_FRAMES / FPS}
    figures["embed_ms_720p_median"], figures["embed_cpu_ms_720p_mean"] = embed_ms(50 if args.quick else 300)
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in (("480p", SIZE), ("720p", (1280, 720))):
            wall_s, cpu_s = detect_file_s(10.0, size, Path(tmp))
            figures[f"detect_s_10s_clip_{name}"], figures[f"detect_cpu_s_10s_clip_{name}"] = wall_s, cpu_s
    figures["load_average_1min"] = os.getloadavg()[0]
    sheet = args.out.with_name("watermark_contact.png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(sheet)
    figures["images"] = [sheet.name]  # shown under the table in RESULTS.md
    figures["samples"] = {
        "marked, H.264 0.5 Mbit/s": raw["marked_z"]["h264_0.5mbit"],
        "marked, VP8 0.5 Mbit/s": raw["marked_z"]["vp8_0.5mbit"],
        "marked, 0.5x": raw["marked_z"]["rescale_0.5x"],
        "unmarked, all transforms": [z for name in TRANSFORMS for z in raw["unmarked_z"][name]],
    }
    figures["samples_unit"] = "detection score z (threshold 6)"
    write_result(args.out, "watermark", figures)
    for key, value in figures.items():
        if key != "samples":
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
