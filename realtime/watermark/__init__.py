"""An invisible watermark on every frame the filter changes, and its detector (numpy + OpenCV).

`Watermarker(run_id).mark(image)` adds a keyed, periodic, band-limited luma pattern (about 1.6
grey levels RMS) carrying a 64-bit payload (format version, tool version, run id, CRC);
`Detector().detect(frames)` finds it after compression, rescaling and cropping by folding many
frames onto one tile and correlating. See pattern.py for the design.
"""

from stablesync.realtime.watermark.config import DetectConfig
from stablesync.realtime.watermark.detect import Detection, Detector, Score, Segment
from stablesync.realtime.watermark.embed import Watermarker, new_run_id
from stablesync.realtime.watermark.payload import Payload

__all__ = [
    "DetectConfig",
    "Detection",
    "Detector",
    "Payload",
    "Score",
    "Segment",
    "Watermarker",
    "new_run_id",
]
