"""What the indices of mediapipe's 468-point face mesh mean, and measures built on them.

Indices follow mediapipe's published face-mesh topology. "Right"/"left" are the subject's.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

RIGHT_EYE = (33, 133, 160, 159, 158, 144, 145, 153)
LEFT_EYE = (263, 362, 387, 386, 385, 373, 374, 380)
NOSE_TIP = 1
CHIN = 152
UPPER_LIP_INNER = 13
LOWER_LIP_INNER = 14
MOUTH_CORNER_RIGHT = 61
MOUTH_CORNER_LEFT = 291
# Lip contours (outer and inner rings), used for mouth landmark distance (LMD) and warps.
MOUTH_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
MOUTH_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
# Lower face below the nose (jaw line from ear to ear through the chin), for compositing masks.
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)

Points = NDArray[np.float32]


def eye_centres(points: Points) -> tuple[Points, Points]:
    """(right eye centre, left eye centre) of (N>=468, 2+) landmarks."""
    return points[list(RIGHT_EYE), :2].mean(0), points[list(LEFT_EYE), :2].mean(0)


def eye_distance(points: Points) -> float:
    right, left = eye_centres(points)
    return float(np.linalg.norm(left - right))


def mouth_opening(points: Points) -> float:
    """Inner-lip gap divided by the eye distance: scale- and resolution-free, ~0 when closed."""
    gap = np.linalg.norm(points[UPPER_LIP_INNER, :2] - points[LOWER_LIP_INNER, :2])
    return float(gap / max(eye_distance(points), 1e-6))
