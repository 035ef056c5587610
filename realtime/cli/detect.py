"""`stablesync detect FILE|FOLDER [--json]`: is this video or picture marked by stablesync?

For each file (mp4, webm, mkv, mov, png, jpg): marked or not with a confidence, the payload
when it can be read (format version, tool version, run id: the id is in that run's stats),
per-second decisions for videos, and the C2PA content credentials when the file has them.
Exit code: 0 when a file is marked, 1 when none is, 2 when a file cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.errors import UserError
from stablesync.realtime.watermark.detect import Detection, Detector, Luma
from stablesync.realtime.watermark.provenance import Credentials, read_credentials

VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Detect stablesync's invisible watermark (and C2PA credentials) in videos and pictures.",
    )
    parser.add_argument(
        "path", type=Path, help="a video (mp4, webm), a picture (png, jpg) or a folder of them"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    return parser


def list_inputs(path: Path) -> list[Path]:
    suffixes = VIDEO_SUFFIXES + IMAGE_SUFFIXES
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        if not files:
            raise UserError(f"{path}: no {', '.join(s[1:] for s in suffixes)} file in this folder")
        return files
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    if path.suffix.lower() not in suffixes:
        raise UserError(f"{path}: expected a video ({', '.join(VIDEO_SUFFIXES)}), a picture or a folder")
    return [path]


def video_frames(path: Path) -> Iterator[tuple[float, Luma]]:
    """(time in seconds, luma) of every frame of the first video stream."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise UserError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or 25)
        for index, frame in enumerate(container.decode(stream)):
            time_s = float(frame.time) if frame.time is not None else index / rate
            yield time_s, luma_plane(frame)


def luma_plane(frame: Any) -> Luma:
    """The frame's Y plane as it is (8-bit YUV formats), else a conversion to grey."""
    if frame.format.name in ("yuv420p", "yuvj420p", "yuv422p", "yuv444p", "nv12"):
        plane = frame.planes[0]
        rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        return np.ascontiguousarray(rows[:, : plane.width])
    return np.asarray(frame.to_ndarray(format="gray"), np.uint8)


def image_luma(path: Path) -> Luma:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise UserError(f"{path}: cannot read this picture")
    luma: Luma = np.ascontiguousarray(image)
    return luma


def analyse(path: Path, detector: Detector) -> dict[str, Any]:
    """The report of one file; raises UserError when it cannot be read."""
    t0 = time.perf_counter()
    is_video = path.suffix.lower() in VIDEO_SUFFIXES
    try:
        if is_video:
            detection = detector.detect(lambda: video_frames(path))
        else:
            luma = image_luma(path)
            detection = detector.detect(lambda: [(0.0, luma)])
    except UserError:
        raise
    except Exception as exc:  # PyAV's and OpenCV's decoding errors
        raise UserError(f"{path}: cannot decode: {type(exc).__name__}: {exc}") from exc
    if detection.frames == 0:
        raise UserError(f"{path}: no picture in it (or smaller than the pattern's period)")
    credentials = read_credentials(path) if is_video else None
    return report(path, detection, credentials, time.perf_counter() - t0, is_video)


def report(
    path: Path, detection: Detection, credentials: Credentials | None, took_s: float, is_video: bool
) -> dict[str, Any]:
    score = detection.overall
    assert score is not None
    payload = score.payload
    return {
        "path": str(path),
        "marked": detection.marked,
        "confidence": score.confidence,
        "z": round(score.z, 2),
        "payload": None
        if payload is None
        else {
            "format_version": payload.format_version,
            "tool_version": payload.tool_version_text,
            "run_id": payload.run_id_hex,
        },
        "frames": detection.frames,
        "scale": round(detection.scale, 4),  # period of the pattern / its period when marked at 480 rows
        "seconds": [
            {"start_s": s.start_s, "frames": s.frames, "z": round(s.z, 2), "marked": s.marked}
            for s in detection.segments
        ]
        if is_video
        else [],
        "c2pa": None
        if credentials is None
        else {
            "state": credentials.state,
            "generator": credentials.generator,
            "description": credentials.description,
            "trusted_here": credentials.trusted_here,
            "problems": credentials.problems,
        },
        "seconds_taken": round(took_s, 2),
    }


def text_lines(entry: dict[str, Any]) -> list[str]:
    if "error" in entry:
        return [f"{entry['path']}: error: {entry['error']}"]
    verdict = "MARKED" if entry["marked"] else "not marked"
    line = f"{entry['path']}: {verdict} (z {entry['z']:.1f}, confidence {entry['confidence']:.6f})"
    payload = entry["payload"]
    if payload is not None:
        line += f"; run {payload['run_id']}, stablesync {payload['tool_version']}"
        line += f", format {payload['format_version']}"
    elif entry["marked"]:
        line += "; payload unreadable"
    lines = [line]
    if entry["seconds"]:
        marks = "".join("M" if s["marked"] else "." for s in entry["seconds"])
        n_marked = sum(s["marked"] for s in entry["seconds"])
        lines.append(f"  per second ({n_marked}/{len(entry['seconds'])} marked): {marks}")
    c2pa = entry["c2pa"]
    if c2pa is not None:
        trust = (
            "signed with this machine's stablesync key" if c2pa["trusted_here"] else "signer not known here"
        )
        problems = f"; problems: {', '.join(c2pa['problems'])}" if c2pa["problems"] else ""
        lines.append(
            f"  C2PA: {c2pa['state']}, {c2pa['generator']}: {c2pa['description']} ({trust}){problems}"
        )
    return lines


def main(args: argparse.Namespace) -> int:
    files = list_inputs(args.path)
    detector = Detector()
    entries: list[dict[str, Any]] = []
    for path in files:
        try:
            entry = analyse(path, detector)
        except UserError as exc:
            if len(files) == 1:
                raise
            entry = {"path": str(path), "error": str(exc)}
        entries.append(entry)
        if not args.json:
            print("\n".join(text_lines(entry)), flush=True)
    if args.json:
        json.dump(entries if args.path.is_dir() else entries[0], sys.stdout, indent=2)
        print()
    if any("error" in e for e in entries):
        return 2
    return 0 if any(e["marked"] for e in entries) else 1
