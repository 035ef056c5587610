"""The reference face encoded as the mean of shifted views (`realtime/pipeline/reference.py`)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

from stablesync.errors import UserError
from stablesync.export.manifest import MAX_REFERENCE_VIEWS, read_manifest
from stablesync.face import open_tracker
from stablesync.face.align import CropAlignment, align_crop
from stablesync.realtime.pipeline.loading import open_engine
from stablesync.realtime.pipeline.reference import VIEWS, mean_features, reference_views

DEMO_FACE = Path(__file__).resolve().parents[1] / "stablesync" / "assets" / "demo" / "face.png"


def _crop() -> NDArray[np.uint8]:
    return np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)


def test_one_view_is_the_crop_as_it_is() -> None:
    crop = _crop()
    (view,) = reference_views(crop, 1)
    assert view.dtype == np.float32 and np.array_equal(view, crop.transpose(2, 0, 1) / np.float32(255))


def test_the_views_are_small_distinct_moves_of_the_crop() -> None:
    crop = np.asarray(
        cv2.GaussianBlur(_crop(), (0, 0), 4), np.uint8
    )  # smooth, so a 1.5-px move changes it a little
    views = reference_views(crop, len(VIEWS))
    assert views.shape == (len(VIEWS), 3, 96, 96) and len(VIEWS) == MAX_REFERENCE_VIEWS
    plain = crop.transpose(2, 0, 1) / 255.0
    moved = [float(np.abs(v - plain).mean()) for v in views]
    assert all(0 < m < 0.05 for m in moved)
    assert len({round(m, 6) for m in moved}) > len(VIEWS) // 2
    with pytest.raises(ValueError, match="reference views"):
        reference_views(crop, len(VIEWS) + 1)


def test_mean_features_average_each_level_over_the_views() -> None:
    per_view = [(np.full((1, 2), k, np.float32), np.full((1, 3, 4, 4), 2 * k, np.float32)) for k in range(8)]
    mean = mean_features(per_view)
    assert mean[0].shape == (1, 2) and np.allclose(mean[0], 3.5)
    assert mean[1].shape == (1, 3, 4, 4) and np.allclose(mean[1], 7.0)
    with pytest.raises(ValueError, match="no views"):
        mean_features([])


def test_the_mean_of_views_depends_less_on_where_the_crop_lands() -> None:
    """The shipped reference encoder on the demo face, its crop placed twice 0.9 px apart: the
    features of the mean of views change about half as much as those of the single crop."""
    image = np.asarray(cv2.cvtColor(cv2.imread(str(DEMO_FACE)), cv2.COLOR_BGR2RGB), np.uint8)
    tracker = open_tracker(video=False)
    try:
        points = tracker.detect(image)[0].points
    finally:
        tracker.close()
    alignment = CropAlignment.from_landmarks(points, 96)
    here = align_crop(image, alignment)
    shifted = alignment.to_crop.copy()
    shifted[:, 2] += (0.7, -0.6)
    there = np.asarray(
        cv2.warpAffine(image, shifted, (96, 96), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
        np.uint8,
    )
    engine = open_engine(None, "ort-cpu")

    def change(views: int) -> float:
        a = mean_features([engine.encode_reference(v[None]) for v in reference_views(here, views)])
        b = mean_features([engine.encode_reference(v[None]) for v in reference_views(there, views)])
        return float(np.mean([np.abs(x - y).mean() / np.abs(x).mean() for x, y in zip(a, b, strict=True)]))

    single, mean = change(1), change(len(VIEWS))
    assert mean < 0.7 * single, (mean, single)


def test_the_views_are_the_export_s_and_checked_when_it_is_read(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[1] / "stablesync" / "assets" / "weights" / "cpu-rt"
    assert read_manifest(shipped).reference_views == len(VIEWS)  # what the real-face run measured
    raw = json.loads((shipped / "manifest.json").read_text())
    for views, expected in ((None, 1), (3, 3)):  # an export from before the field: the crop as it is
        if views is None:
            raw.pop("reference_views")
        else:
            raw["reference_views"] = views
        (tmp_path / "manifest.json").write_text(json.dumps(raw))
        assert read_manifest(tmp_path).reference_views == expected
    raw["reference_views"] = MAX_REFERENCE_VIEWS + 1
    (tmp_path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="reference_views 9, expected 1 to 8"):
        read_manifest(tmp_path)
