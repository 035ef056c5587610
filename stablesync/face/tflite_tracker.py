"""Face mesh without mediapipe: MediaPipe's own face detection and 468-point face landmark
models (.tflite, see `model_files`) on LiteRT, placed as mediapipe's face mesh graph places
them. Installs on Python 3.11 to 3.13 with numpy 2.

Video mode tracks like mediapipe: the previous frame's landmarks place this frame's region,
and the detector runs only while fewer than `max_faces` faces are tracked (then every
`redetect_frames`-th frame once one is). Same output as
`FaceMeshTracker`: faces largest first, (468, 3) points in frame pixels. One per thread.

The short-range detector sees the whole frame at 128x128, so it misses faces under about a tenth
of the frame's longer side (a person 2 m from a 1080p camera: under ~190 px forehead to chin).
Where the whole frame shows no face and none is tracked, it also searches overlapping squares a
third of the longer side (`search_squares`): in video mode `squares_per_frame` of them a frame in
turn, so a small face is found within a few frames at a bounded cost; on stills all at once.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from stablesync.face import blazeface
from stablesync.face.litert import Model
from stablesync.face.model_files import ModelFiles, find_models
from stablesync.face.roi import Roi, roi_from_box, roi_from_landmarks
from stablesync.face.tracker import TrackedFace

NUM_POINTS = 468
# AssociationNormRectCalculator's threshold: a region overlapping a tracked one more is dropped.
_SAME_FACE_IOU = 0.5
# The search squares: a third of the frame's longer side, half a square apart, and only where
# that is at least this many pixels (smaller frames' faces are found whole, down to ~1/10 of it).
SEARCH_FRACTION = 1.0 / 3.0
MIN_SEARCH_SIDE_PX = 320.0


def search_squares(width: int, height: int) -> list[Roi]:
    """Overlapping squares covering the frame, each face up to half a square wide lying whole
    inside one; none for frames whose longer side is under 3 * `MIN_SEARCH_SIDE_PX`."""
    side = max(width, height) * SEARCH_FRACTION
    if side < MIN_SEARCH_SIDE_PX:
        return []

    def starts(extent: int) -> list[float]:
        last = max(extent - side, 0.0)
        count = int(np.ceil(last / (side / 2.0))) + 1
        return sorted({round(min(k * side / 2.0, last)) for k in range(count)})

    return [
        Roi(cx=x + side / 2.0, cy=y + side / 2.0, side=side, rotation=0.0)
        for y in starts(height)
        for x in starts(width)
    ]


def _iou(a: Roi, b: Roi) -> float:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = a.side**2 + b.side**2 - inter
    return inter / union if union > 0 else 0.0


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(x, -100.0, 100.0))))


def landmarks_in(
    landmarker: Model, frame: NDArray[np.uint8], roi: Roi, min_presence: float
) -> NDArray[np.float32] | None:
    """(468, 3) landmarks in frame pixels of the face the landmark model finds in `roi`; None
    when its face-presence score is below `min_presence`."""
    size = landmarker.input_size
    tensor = roi.crop(frame, size).astype(np.float32) * (1.0 / 255.0)
    outputs = sorted(landmarker.run(tensor), key=lambda t: t.size, reverse=True)
    if _sigmoid(float(outputs[1].reshape(-1)[0])) < min_presence:
        return None
    return roi.project(outputs[0].reshape(NUM_POINTS, 3), size)


class TFLiteFaceTracker:
    """`video=True` tracks across frames; False detects afresh in every image."""

    def __init__(
        self,
        max_faces: int = 1,
        video: bool = True,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        threads: int = 1,
        models: ModelFiles | None = None,
        redetect_frames: int = 5,
        squares_per_frame: int = 3,
    ) -> None:
        """`models`: other .tflite files than `find_models()`'s. `redetect_frames`: while some
        but fewer than `max_faces` faces are tracked, the detector looks for more faces only
        every this many frames (mediapipe: every frame; the tracked faces' landmarks are the
        same either way, a new face is found up to that many frames later). `squares_per_frame`:
        how many search squares a video frame adds while no face is found or tracked."""
        self.models = models or find_models()
        self.redetect_frames = max(1, redetect_frames)
        self._since_detection = 0
        self.max_faces = max_faces
        self.video = video
        self.min_detection = min_detection_confidence
        self.min_tracking = min_tracking_confidence
        self._detector = Model(self.models.detector, threads)
        self._landmarker = Model(self.models.landmark, threads)
        self._anchors = blazeface.anchors()
        self._previous: list[NDArray[np.float32]] = []
        self.squares_per_frame = max(1, squares_per_frame)
        self._squares: list[Roi] = []
        self._squares_for: tuple[int, int] | None = None
        self._next_square = 0

    def detect(self, frame_rgb: NDArray[np.uint8]) -> list[TrackedFace]:
        """Faces in an (H, W, 3) uint8 RGB frame, largest first; [] when there is none."""
        frame = np.ascontiguousarray(frame_rgb[..., :3])
        tracked = [roi_from_landmarks(p) for p in self._previous] if self.video else []
        rois = tracked
        if self._detector_due(len(tracked)):
            found = self._detect_rois(frame, search=not tracked)
            rois = self._associate(found[: self.max_faces], tracked)
        points = [p for p in (self._landmarks(frame, r) for r in rois[: self.max_faces]) if p is not None]
        self._previous = points if self.video else []
        faces = [TrackedFace(points=p) for p in points]
        faces.sort(key=lambda f: f.area_px, reverse=True)
        return faces

    def _detector_due(self, tracked: int) -> bool:
        if tracked >= self.max_faces:
            return False
        self._since_detection += 1
        if tracked and self._since_detection < self.redetect_frames:
            return False
        self._since_detection = 0
        return True

    def _associate(self, detected: list[Roi], tracked: list[Roi]) -> list[Roi]:
        """Detected and tracked regions, one per face, tracked first; a tracked region wins over
        a detected one that overlaps it (mediapipe's association: later inputs preferred)."""
        kept: list[Roi] = []
        for roi in detected + tracked:
            kept = [k for k in kept if _iou(k, roi) <= _SAME_FACE_IOU]
            kept.append(roi)
        return [k for k in kept if k in tracked] + [k for k in kept if k not in tracked]

    def _detect_rois(self, frame: NDArray[np.uint8], search: bool = True) -> list[Roi]:
        """Faces the detector finds in the whole frame, then, when it finds none and `search`
        (no face is tracked), in this frame's turn of search squares; one region per face, most
        confident first. A tracked face is not searched beside: a further face too small for the
        whole frame is not the one to lip-sync, and the squares would cost every detection."""
        h, w = frame.shape[:2]
        found = self._detect_in(frame, Roi(cx=w / 2.0, cy=h / 2.0, side=float(max(h, w)), rotation=0.0))
        if found or not search:
            return [roi for _, roi in found]
        for square in self._search_turn(w, h):
            found += self._detect_in(frame, square)
        kept: list[tuple[float, Roi]] = []
        for score, roi in sorted(found, key=lambda f: -f[0]):
            if all(_iou(roi, k) <= _SAME_FACE_IOU for _, k in kept):
                kept.append((score, roi))
        return [roi for _, roi in kept]

    def _search_turn(self, width: int, height: int) -> list[Roi]:
        if self._squares_for != (width, height):
            self._squares, self._squares_for = search_squares(width, height), (width, height)
            self._next_square = 0
        count = len(self._squares)
        if not self.video or count <= self.squares_per_frame:
            return self._squares
        turn = [self._squares[(self._next_square + k) % count] for k in range(self.squares_per_frame)]
        self._next_square = (self._next_square + self.squares_per_frame) % count
        return turn

    def _detect_in(self, frame: NDArray[np.uint8], square: Roi) -> list[tuple[float, Roi]]:
        """(score, region) of each face the detector finds in an upright square of the frame."""
        side = square.side
        size = self._detector.input_size
        crop = square.crop(frame, size, border=0)  # cv2.BORDER_CONSTANT: black letterbox
        tensor = crop.astype(np.float32) * (2.0 / 255.0) - 1.0
        outputs = sorted(self._detector.run(tensor), key=lambda t: t.shape[-1], reverse=True)
        found = blazeface.decode(outputs[0], outputs[1], self._anchors, self.min_detection)
        x0, y0 = square.cx - side / 2.0, square.cy - side / 2.0
        rois = []
        for det in found:
            bx = det.box * side + np.array([x0, y0, x0, y0], dtype=np.float32)
            kp = det.keypoints * side + np.array([x0, y0], dtype=np.float32)
            box = (float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3]))
            rois.append((det.score, roi_from_box(box, kp[0], kp[1])))
        return rois

    def _landmarks(self, frame: NDArray[np.uint8], roi: Roi) -> NDArray[np.float32] | None:
        return landmarks_in(self._landmarker, frame, roi, self.min_tracking)

    def close(self) -> None:
        self._previous = []

    def __enter__(self) -> TFLiteFaceTracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
