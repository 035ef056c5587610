"""The int8 frame graph against the fp32 one on a real video, rendered in one process.

`python -m stablesync.export.int8_real DIR --video talk1.mp4 [--audio other.wav] [--seconds 6] --out FOLDER`

The video is rendered twice by the offline session (`stablesync.benchmarks.offline_render`, as the
real-face benchmark renders it), once with frame.onnx and once with frame_int8.onnx, with the
same code and inputs, so every difference between the two is the graph's. Measured: PSNR of
the int8 output against the fp32 output over the box of pixels the lip-sync changed, the
real-face benchmark's figures for each (`stablesync.benchmarks.real_faces.measure_case`), and one contact
sheet per graph on the same frames (the fp32 output's picks).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.export.manifest import read_manifest, write_manifest
from stablesync.export.quantize import psnr_db


def _fp32_only(directory: Path, tmp: Path) -> Path:
    """A copy of the export that lists no frame_int8 graph."""
    out = tmp / "fp32"
    shutil.copytree(directory, out, ignore=shutil.ignore_patterns("frame_int8.onnx"))
    manifest = read_manifest(directory)
    graphs = {k: v for k, v in manifest.graphs.items() if k != "frame_int8"}
    write_manifest(out, dataclasses.replace(manifest, graphs=graphs, int8_check=None, int8_psnr_db=None))
    return out


def _changed_box_psnr_db(source: list[Any], a: list[Any], b: list[Any]) -> float:
    """PSNR of b against a over the bounding box of pixels where a differs from the source."""
    src, fa, fb = (np.stack(x).astype(np.float32) / 255.0 for x in (source, a, b))
    changed = (np.abs(fa - src).max(axis=(0, 3)) > 2.0 / 255.0).nonzero()
    if not len(changed[0]):
        return float("inf")
    (y0, y1), (x0, x1) = ((c.min(), c.max() + 1) for c in changed)
    return psnr_db(fa[:, y0:y1, x0:x1], fb[:, y0:y1, x0:x1])


def compare(directory: Path, video: Path, audio: Path | None, seconds: float, out: Path) -> dict[str, Any]:
    from stablesync.benchmarks.offline_render import render_offline
    from stablesync.benchmarks.real_faces import RATE_HZ, _read_video, contact_sheet, measure_case
    from stablesync.media import read_audio

    frames, pts = _read_video(video, seconds)
    speech = read_audio(audio if audio is not None else video, RATE_HZ)
    own = read_audio(video, RATE_HZ) if audio is not None else None
    name = f"{'crossdub' if audio else 'redub'}/{video.stem}"
    report: dict[str, Any] = {"video": str(video), "audio": str(audio or video), "frames": len(frames)}
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = render_offline(str(_fp32_only(directory, Path(tmp))), frames, pts, speech)
    int8 = render_offline(str(directory), frames, pts, speech)
    figures_fp32, picks = measure_case(name, frames, fp32.images, pts, speech, own)
    figures_int8, _ = measure_case(name, frames, int8.images, pts, speech, own)
    report["changed_box_psnr_db"] = _changed_box_psnr_db(frames, fp32.images, int8.images)
    report["fp32"], report["int8"] = figures_fp32, figures_int8
    report["lipsync_frames"] = {"fp32": fp32.modes.count("lipsync"), "int8": int8.modes.count("lipsync")}
    for tag, rendered in (("fp32", fp32), ("int8", int8)):
        contact_sheet(frames, rendered.images, picks, out / f"{name.replace('/', '_')}_{tag}.png")
    return report


def main(argv: list[str] | None = None) -> int:
    about = __doc__.splitlines()[0]
    parser = argparse.ArgumentParser(prog="python -m stablesync.export.int8_real", description=about)
    parser.add_argument("directory", type=Path, help="an export directory listing frame_int8")
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--audio", type=Path, default=None, help="another recording to drive it")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--out", type=Path, required=True, help="folder for the report and sheets")
    args = parser.parse_args(argv)
    report = compare(args.directory, args.video, args.audio, args.seconds, args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=float)
    (args.out / f"{args.video.stem}.json").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
