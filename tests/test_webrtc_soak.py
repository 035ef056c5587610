"""benchmarks/webrtc_soak.py's bookkeeping (no WebRTC here: the soak itself runs for minutes):
what it takes per minute from the long session's figures, how the first and last minutes are
compared against issue 21's bounds, and the process figures it reads from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from stablesync.benchmarks.webrtc_soak import compare, criteria, fd_kinds, log_figures, minute_record, plot

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _stats(frames_out: int, late: int, p50: float) -> dict[str, Any]:
    return {
        "frames_out": frames_out,
        "late_frames": late,
        "server_latency_ms": {"p50": p50},
        "encode_ms": 9.0,
        "pipeline": {"stages_p50_ms": {"infer_ms": p50 / 2}},
        "sync_delay_ms": p50,
    }


def _row(
    minute: int,
    g2g: float,
    server: float,
    late: float,
    rss: float,
    fds: int,
    threads: int,
    workers_rss: float = 170.0,
) -> dict[str, Any]:
    return {
        "minute": minute,
        "glass_to_glass_ms_p50": g2g,
        "server_latency_ms_p50": server,
        "late_share": late,
        "load_average_1m": 4.0,
        "rss_mb": rss,
        "fds": fds,
        "fds_min": fds,
        "rss_mb_min": rss,
        "threads": threads,
        "threads_min": threads,
        "workers": 2,  # the long session's and the spare
        "workers_rss_mb_min": workers_rss,
    }


@linux_only
def test_minute_record_takes_the_minute_s_frames_and_late_ones_against_the_previous_total() -> None:
    result = SimpleNamespace(
        glass_to_glass_ms=[100.0, 100.0, 300.0, 310.0, 320.0],
        stats=[_stats(1500, 150, 90.0), _stats(2250, 225, 120.0), _stats(3000, 750, 130.0)],
    )
    peer: Any = SimpleNamespace(result=result)
    samples = [
        {"rss_mb": 1.0, "fds": 3, "threads": 1, "workers": 1, "workers_rss_mb": 85.0},
        {"rss_mb": 1.0, "fds": 900, "threads": 40, "workers": 3, "workers_rss_mb": 255.0},
    ]
    # the minute's end is read off a process with one thread and few fds (this test process's
    # own counts depend on the tests run before it)
    idle = subprocess.Popen(
        [sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(30)"],
        stdout=subprocess.PIPE,
    )
    assert idle.stdout is not None and idle.stdout.readline().strip() == b"ready"  # running, not exec'ing
    try:
        record = minute_record(peer, g2g_from=2, stats_from=1, pid=idle.pid, minute=2, samples=samples)
    finally:
        idle.kill()
        idle.wait()
    assert record["glass_to_glass_ms_p50"] == 310.0  # the minute's three, not the first minute's
    assert record["late_share"] == pytest.approx((750 - 150) / (3000 - 1500))
    assert record["server_latency_ms_p50"] == 125.0
    assert record["fps_out"] == 25.0
    assert record["stages_p50_ms"] == {"infer_ms": 62.5} and record["encode_ms_p50"] == 9.0
    assert record["sync_delay_ms"] == 130.0
    assert record["fds_min"] == 3 and record["fds_max"] == 900  # the samples' range, the end's too
    assert record["threads_min"] == 1 and record["threads_max"] == 40
    assert record["workers_max"] == 3 and record["workers_rss_mb_min"] == 0.0  # the idle one has none
    assert record["load_average_1m"] >= 0.0 and record["rss_mb"] > 0


def test_compare_takes_the_medians_of_the_first_and_last_windows() -> None:
    rows = [_row(m, 200.0 + m, 100.0, 0.2, 400.0 + m, 12, 11) for m in range(1, 31)]
    change = compare(rows, 5)
    assert change["window_minutes"] == 5
    assert change["glass_to_glass_ms_p50"] == {"first": 203.0, "last": 228.0, "change": 25.0}
    assert change["rss_mb"]["change"] == 25.0 and change["fds"]["change"] == 0.0
    assert change["late_share"]["change"] == 0.0


def test_criteria_are_issue_21_s_bounds() -> None:
    flat = [_row(m, 250.0, 120.0, 0.25, 420.0, 12, 11) for m in range(1, 11)]
    baseline = {"fds": 12, "threads": 11, "rss_mb": 400.0, "workers": 1}
    met_end = {"fds": 12, "threads": 11, "workers": 1}
    met = criteria(compare(flat, 5), baseline, met_end)
    assert all(met.values()), met

    drift = flat[:5] + [_row(m, 261.0, 131.0, 0.271, 431.0, 12, 11, 181.0) for m in range(6, 11)]
    missed = criteria(compare(drift, 5), baseline, {"fds": 13, "threads": 12, "workers": 2})
    assert not any(missed.values()), missed

    # better is fine; RSS may move 10 MB either way
    better = flat[:5] + [_row(m, 200.0, 80.0, 0.1, 415.0, 12, 11) for m in range(6, 11)]
    assert all(criteria(compare(better, 5), baseline, {"fds": 10, "threads": 11, "workers": 0}).values())

    # RSS is judged on the minutes' floors: a churn session caught at a minute's end is not growth,
    # a floor that rises is
    caught = [dict(r, rss_mb=r["rss_mb"] + 40.0) if r["minute"] > 5 else r for r in flat]
    assert criteria(compare(caught, 5), baseline, met_end)["rss_within_10_mb"] is True
    grown = [dict(r, rss_mb_min=r["rss_mb_min"] + 11.0) if r["minute"] > 5 else r for r in flat]
    assert criteria(compare(grown, 5), baseline, met_end)["rss_within_10_mb"] is False

    unmeasured = criteria(compare([dict(r, glass_to_glass_ms_p50=None) for r in flat], 5), baseline, met_end)
    assert unmeasured["glass_to_glass_p50_within_10_ms"] is None


@linux_only
def test_fd_kinds_names_sockets_pipes_and_files_without_their_inodes(tmp_path: Path) -> None:
    before = fd_kinds(os.getpid())
    read_end, write_end = os.pipe()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    handle = (tmp_path / "f").open("w")
    try:
        after = fd_kinds(os.getpid())
    finally:
        handle.close()
        sock.close()
        os.close(read_end)
        os.close(write_end)
    assert after.get("socket", 0) == before.get("socket", 0) + 1
    assert after.get("pipe", 0) == before.get("pipe", 0) + 2
    assert after.get("file", 0) == before.get("file", 0) + 1
    assert not any(":[" in kind and kind.split(":[")[1][:1].isdigit() for kind in after)


def test_log_figures_count_why_sessions_closed_whatever_their_numbers(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "10:16:40,430 realtime.webrtc.server: session c5387be9: answered 127.0.0.1 (1/4)\n"
        "10:16:41,430 realtime.webrtc.peer: session c5387be9: closing (no media for 5.2 s)\n"
        "10:16:42,430 realtime.webrtc.peer: session 1a6b4d84: closing (no media for 6.0 s)\n"
        "10:16:43,075 realtime.webrtc.peer: session 48de300b: closing (the peer's tracks ended)\n"
        "10:16:44,000 WARNING realtime.pipeline.session: c5387be9-track: its part did not close"
        " within 1.0 s\n"
        "10:16:45,000 ERROR realtime.webrtc.peer: session 1a6b4d84: failed\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "RuntimeError: boom\n"
        "10:16:46,000 realtime.webrtc.peer: session 48de300b: closed\n"
        "2026-12-03 10:16:47,000 ERROR asyncio: Task was destroyed but it is pending!\n"
        "task: <Task pending name='Task-9' coro=<Worker.close() running at worker.py:48>>\n"
        "2026-12-03 10:16:48,000 INFO realtime.webrtc.peer: session 48de300b: closed\n"
    )
    figures = log_figures(log)
    assert figures["close_reasons"] == {"no media for N s": 2, "the peer's tracks ended": 1}
    assert figures["lines"] == 13 and figures["tracebacks"] == 1
    (text,) = figures["traceback_texts"]
    assert text.splitlines()[0].endswith("session 1a6b4d84: failed") and text.endswith("RuntimeError: boom")
    assert figures["warnings"] == {
        "realtime.pipeline.session: N-track: its part did not close within N s": 1,
        "realtime.webrtc.peer: session N: failed": 1,
        "asyncio: Task was destroyed but it is pending!": 1,
    }
    # the destroyed task's name and coroutine are on the line after: kept whole; a traceback is not
    # kept twice (it is in traceback_texts)
    assert figures["warning_texts"] == [
        "2026-12-03 10:16:47,000 ERROR asyncio: Task was destroyed but it is pending!\n"
        "task: <Task pending name='Task-9' coro=<Worker.close() running at worker.py:48>>"
    ]
    assert log_figures(tmp_path / "missing.log") == {}


def test_plot_draws_the_series_with_gaps_for_unmeasured_minutes(tmp_path: Path) -> None:
    rows = [_row(m, 250.0, 120.0, 0.25, 420.0, 12, 11) for m in range(1, 4)]
    rows[1]["glass_to_glass_ms_p50"] = None
    path = tmp_path / "soak_per_minute.png"
    plot(rows, path, "test")
    assert path.stat().st_size > 1000
