"""The virtual camera's output size: call apps get 1280x720 by default, a photo of another
shape is fitted in (not stretched) over a blurred fill; bad sizes are one-line errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from stablesync.errors import UserError
from stablesync.realtime.cli.run import parse_size
from stablesync.realtime.local.sinks.virtual_camera import VirtualCameraConfig, fit_frame


def test_a_tall_photo_is_fitted_in_not_stretched() -> None:
    photo = np.zeros((300, 256, 3), np.uint8)
    photo[:, :, 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]  # a left-to-right ramp
    out = fit_frame(photo, (1280, 720))
    assert out.shape == (720, 1280, 3) and out.dtype == np.uint8
    fw = round(256 * 720 / 300)  # 614 px wide, full height, centred
    x0 = (1280 - fw) // 2
    inner = out[:, x0 : x0 + fw]
    expected = cv2.resize(photo, (fw, 720), interpolation=cv2.INTER_LINEAR)
    assert np.abs(inner.astype(int) - expected.astype(int)).max() <= 1
    assert out[:, : x0 - 4].std() < photo.std()  # the margins are a blurred fill, not the photo


def test_same_aspect_is_a_plain_resize_and_the_default_is_720p() -> None:
    frame = np.random.default_rng(0).integers(0, 255, (360, 640, 3), dtype=np.uint8)
    assert fit_frame(frame, (1280, 720)).shape == (720, 1280, 3)
    assert VirtualCameraConfig().size == (1280, 720)


@pytest.mark.parametrize("text", ["1280", "1280x", "0x720", "1281x720", "axb", "99999x720"])
def test_bad_sizes_are_one_line_errors(text: str) -> None:
    with pytest.raises(UserError) as err:
        parse_size(text, "--output-size")
    assert "\n" not in str(err.value) and text in str(err.value)
    assert parse_size("1920x1080", "--output-size") == (1920, 1080)
