"""The generated crop's landmark reader (`stablesync.face.crop_landmarks`): the landmark model
alone, on the region an aligned crop puts the face in, agrees with the full face mesh."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from stablesync.face import CropAlignment, FaceMeshTracker, align_crop
from stablesync.face.crop_landmarks import CropLandmarks
from stablesync.face.landmarks import MOUTH_INNER, MOUTH_OUTER
from stablesync.media import iter_video_frames

LIPS = list(MOUTH_OUTER + MOUTH_INNER)


def _mesh_on_enlarged(tracker: FaceMeshTracker, crop: np.ndarray) -> np.ndarray:
    """The face mesh on the crop enlarged 4x with a replicated border, in crop pixels."""
    s = crop.shape[0]
    big = cv2.copyMakeBorder(
        cv2.resize(crop, (4 * s, 4 * s), interpolation=cv2.INTER_CUBIC), s, s, s, s, cv2.BORDER_REPLICATE
    )
    faces = tracker.detect(np.ascontiguousarray(big))
    assert faces, "the face mesh found no face on the enlarged crop"
    return (faces[0].points[:, :2] - s) / 4.0


def test_reads_the_lips_of_aligned_crops_like_the_face_mesh(tiny_corpus: Path) -> None:
    frames = [image for image, _ in iter_video_frames(tiny_corpus / "clip00000.mp4")][:12]
    reader = CropLandmarks(96)
    errors = []
    with FaceMeshTracker(video=False) as frame_mesh, FaceMeshTracker(video=False) as crop_mesh:
        for frame in frames:
            alignment = CropAlignment.from_landmarks(frame_mesh.detect(frame)[0].points, 96)
            crop = align_crop(frame, alignment)
            read = reader.read(crop)
            assert read is not None and read.shape == (468, 2)
            errors.append(float(np.abs(read[LIPS] - _mesh_on_enlarged(crop_mesh, crop)[LIPS]).max()))
    # within a pixel of the 96-px crop (its lips span ~35 px); the fixed start region only
    # serves the first read, the later ones track
    assert np.median(errors) < 1.0, errors


def test_no_face_is_no_landmarks() -> None:
    reader = CropLandmarks(96)
    flat = np.full((96, 96, 3), 128, np.uint8)
    assert reader.read(flat) is None
    # and it starts over from the fixed region afterwards
    assert reader.read(flat) is None
