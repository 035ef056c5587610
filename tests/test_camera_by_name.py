"""`--camera` takes part of a webcam's name, as `stablesync devices` lists them (Linux sysfs):
the tree below is shaped as /sys/class/video4linux is; an unknown name is a one-line error
naming the cameras there are, before the model loads or anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablesync.cli import main as cli_main
from stablesync.errors import UserError
from stablesync.realtime.local.devices import resolve_camera


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    """video0: a laptop's camera, video2: a USB webcam, video10: a v4l2loopback virtual camera."""
    root = tmp_path / "video4linux"
    for index, label, driver in (
        (0, "Integrated Camera: Integrated C", "uvcvideo"),
        (2, "HD Pro Webcam C920", "uvcvideo"),
        (10, "stablesync", "v4l2 loopback"),
    ):
        (tmp_path / "drivers" / driver).mkdir(parents=True, exist_ok=True)
        (root / f"video{index}" / "device").mkdir(parents=True)
        (root / f"video{index}" / "name").write_text(f"{label}\n")
        (root / f"video{index}" / "device" / "driver").symlink_to(tmp_path / "drivers" / driver)
    return root


def test_a_camera_is_found_by_part_of_its_name(sysfs: Path) -> None:
    assert resolve_camera("c920", sysfs) == "/dev/video2"
    assert resolve_camera("INTEGRATED", sysfs) == "/dev/video0"
    assert resolve_camera(None, sysfs) == 0 and resolve_camera("2", sysfs) == 2
    assert resolve_camera("/dev/video7", sysfs) == "/dev/video7"  # a path as given
    assert resolve_camera("rtsp://cam.local/stream", sysfs) == "rtsp://cam.local/stream"


def test_a_virtual_camera_or_an_unknown_name_is_refused_naming_the_webcams(sysfs: Path) -> None:
    for name in ("stablesync", "Logitech Brio"):  # the loopback device is an output, not a webcam
        with pytest.raises(UserError) as refused:
            resolve_camera(name, sysfs)
        said = str(refused.value)
        assert f"--camera {name}: no camera named like that" in said
        assert "HD Pro Webcam C920 (/dev/video2)" in said and "(/dev/video10)" not in said


def test_run_with_an_unknown_camera_name_is_a_one_line_error_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "call.mp4"
    code = cli_main(["run", "--camera", "No Such Cam", "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0, err
    assert "--camera No Such Cam: no camera named like that" in err and not out.exists()
