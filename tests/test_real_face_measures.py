"""The real-face benchmark's measures on pictures whose answer is known, and its skip without
the real media (a user's clone has no ../shared/real)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from stablesync.evaluation.real_face import measure_frame, straight_edge_frac, teal_share
from stablesync.face import FaceMeshTracker
from stablesync.face.landmarks import MOUTH_OUTER


def _face(rt_face_photo: Path) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.cvtColor(cv2.imread(str(rt_face_photo)), cv2.COLOR_BGR2RGB)
    with FaceMeshTracker(video=False) as tracker:
        points = tracker.detect(image)[0].points
    return image, points


def test_an_untouched_frame_measures_as_untouched(rt_face_photo: Path) -> None:
    image, points = _face(rt_face_photo)
    m = measure_frame(image, image.copy(), points, points)
    assert m is not None
    assert m.upper_psnr_db == 99.0 and m.sharpness_ratio == 1.0
    assert m.straight_edge_frac == 0.0 and m.teal_share < 0.01


def test_a_pasted_box_is_a_straight_edge_and_teal_lips_are_teal(rt_face_photo: Path) -> None:
    image, points = _face(rt_face_photo)
    pasted = image.copy()
    x0, y0 = np.floor(points[:, :2].min(0)).astype(int)
    x1, y1 = np.ceil(points[:, :2].max(0)).astype(int)
    mid = (y0 + y1) // 2
    pasted[mid:y1, x0:x1] = (
        cv2.GaussianBlur(pasted[mid:y1, x0:x1], (0, 0), 3) // 2 + 40
    )  # a blurred, tinted box
    assert straight_edge_frac(image, pasted, points) > 0.2
    teal = image.copy()
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(MOUTH_OUTER), :2]).astype(np.int32)], (1,))
    teal[mask > 0] = (60, 160, 150)
    assert teal_share(teal, points) > 0.9


def test_the_benchmark_skips_in_one_line_without_real_media(tmp_path: Path) -> None:
    out = tmp_path / "real_faces.json"
    cmd = [
        sys.executable,
        "-m",
        "stablesync.benchmarks.real_faces",
        "--data",
        str(tmp_path / "none"),
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent
    )
    assert proc.returncode == 0 and proc.stdout.strip().count("\n") == 0 and "skipped" in proc.stdout
    assert "skipped" in json.loads(out.read_text())["figures"]
