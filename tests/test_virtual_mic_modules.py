"""The Linux virtual microphone's PulseAudio modules, on a real private PulseAudio server: two
runs at once each get their own, and a crashed run's are cleaned up by the next one."""

from __future__ import annotations

import subprocess
import sys

from stablesync.realtime.local.sinks.pulse import PulseVirtualMic, sink_names, source_names


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_two_runs_get_their_own_microphone_and_the_first_leaving_keeps_the_second(pulse_server: str) -> None:
    first, second = PulseVirtualMic(), PulseVirtualMic()
    assert first.create() == "stablesync"
    try:
        assert second.create() == "stablesync-2"
        first.remove()
        assert "stablesync" not in source_names()
        assert "stablesync-2" in source_names() and second.sink_name in sink_names()
    finally:
        first.remove()
        second.remove()
    assert not {"stablesync", "stablesync-2"} & set(source_names())


def test_a_crashed_runs_modules_are_unloaded_by_the_next_run(pulse_server: str) -> None:
    crashed = PulseVirtualMic(owner_pid=_dead_pid())
    crashed.create()  # never removed: its process is gone
    assert "stablesync" in source_names()
    alive = PulseVirtualMic()
    try:
        assert alive.create() == "stablesync"  # the stale one was unloaded, its name is free again
        assert alive.stale_removed == 2
        assert source_names().count("stablesync") == 1
    finally:
        alive.remove()
    assert "stablesync" not in source_names() and "stablesync_sink" not in sink_names()
