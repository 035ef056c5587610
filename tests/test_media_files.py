"""Reading media files (`stablesync.media`): frames and their times come back as written, and an
unreadable file is a one-line `UserError` naming it, whatever stage fails."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stablesync.errors import UserError
from stablesync.media import Mp4Writer, iter_video_frames, video_info, write_wav


def _clip(path: Path, frames: int = 6) -> Path:
    rng = np.random.default_rng(0)
    writer = Mp4Writer(path, 25.0, (64, 48), audio_rate_hz=16_000)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    writer.close(np.zeros(16_000 * frames // 25, np.float32))
    return path


def test_frames_and_times_as_written(tmp_path: Path) -> None:
    path = _clip(tmp_path / "clip.mp4")
    assert video_info(path) == (25.0, 64, 48)
    got = list(iter_video_frames(path))
    assert [round(t, 3) for _, t in got] == [0.0, 0.04, 0.08, 0.12, 0.16, 0.2]
    with av.open(str(path)) as container:
        plain = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for (image, _), reference in zip(got, plain, strict=True):
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(image, reference)  # the one-thread conversion changes no pixel


def test_not_a_video_is_named(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("not a video at all\n")
    with pytest.raises(UserError, match=r"notes\.mp4: cannot open video"):
        video_info(path)
    with pytest.raises(UserError, match=r"notes\.mp4: cannot decode video"):
        list(iter_video_frames(path))


def test_sound_without_picture_is_named(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "voice.wav", np.zeros(1600, np.float32), 16_000)
    for read in (video_info, lambda p: list(iter_video_frames(p))):
        with pytest.raises(UserError, match=r"voice\.wav: has no video stream; expected a video file"):
            read(path)


def test_a_truncated_video_is_named_not_raised_raw(tmp_path: Path) -> None:
    path = _clip(tmp_path / "cut.mp4", frames=20)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    try:
        frames = list(iter_video_frames(path))
    except UserError as exc:
        assert "cut.mp4" in str(exc)
    else:
        assert len(frames) < 20
