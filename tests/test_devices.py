"""`stablesync devices` on this machine: a real PulseAudio server's sources and sinks, the
tracker and backends, JSON output; and the Linux camera list read from a sysfs-shaped tree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stablesync.realtime.cli.devices import linux_cameras


def test_devices_lists_the_sound_servers_devices_the_tracker_and_backends(pulse_server: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stablesync", "devices", "--json"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert f"{pulse_server}.monitor" in found["pulse_sources"] and pulse_server in found["pulse_sinks"]
    assert "ort-cpu" in found["backends"] and "face tracker" in found["tracker"]
    text = subprocess.run(
        [sys.executable, "-m", "stablesync", "devices"], capture_output=True, text=True, timeout=120
    )
    assert f"PulseAudio sink: {pulse_server}" in text.stdout and "virtual cameras" in text.stdout


def test_linux_cameras_tells_webcams_from_loopback_devices(tmp_path: Path) -> None:
    drivers = tmp_path / "drivers"
    for name in ("uvcvideo", "v4l2 loopback"):
        (drivers / name).mkdir(parents=True)
    for index, label, driver in ((0, "Integrated Camera", "uvcvideo"), (10, "stablesync", "v4l2 loopback")):
        entry = tmp_path / "video4linux" / f"video{index}"
        (entry / "device").mkdir(parents=True)
        (entry / "name").write_text(label + "\n")
        (entry / "device" / "driver").symlink_to(drivers / driver)
    cameras = linux_cameras(tmp_path / "video4linux")
    assert [(c.device, c.name, c.virtual) for c in cameras] == [
        ("/dev/video0", "Integrated Camera", False),
        ("/dev/video10", "stablesync", True),
    ]
