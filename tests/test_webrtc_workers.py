"""`serve`'s sessions in worker processes (realtime/webrtc/worker_process.py): the wire, real
aiortc peers through real workers, and the faults that must only ever degrade to passthrough:
a worker killed mid-stream, a worker that cannot load."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest

from stablesync.realtime.pipeline.frames import StageTimes
from stablesync.realtime.pipeline.session import SessionConfig
from stablesync.realtime.pipeline.telemetry import Telemetry
from stablesync.realtime.webrtc.session_worker import changed_counts
from stablesync.realtime.webrtc.worker_process import MAX_RESTARTS, WorkerPipelines, WorkerSession
from stablesync.realtime.webrtc.worker_wire import (
    FrameMeta,
    Kind,
    WireError,
    WorkerSpec,
    i420_frame,
    i420_planes,
    pack,
    read_message,
)


def _reader_of(data: bytes, eof: bool = True) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return reader


async def test_messages_cross_the_wire_whole_and_a_cut_one_is_an_error() -> None:
    meta = FrameMeta(7, "lipsync", StageTimes(1.0, 2.0, 3.0, 4.0), 123, False, 4, 2, {"reference_encoded": 1})
    one = b"".join(pack(Kind.FRAME, meta, b"\x01\x02\x03"))
    two = b"".join(pack(Kind.DONE))
    reader = _reader_of(one + two)
    assert await read_message(reader) == (Kind.FRAME, meta, b"\x01\x02\x03")
    assert await read_message(reader) == (Kind.DONE, None, b"")
    assert await read_message(reader) is None  # the end, between messages
    for cut in (3, len(one) - 1):  # inside the header, inside the payload
        with pytest.raises(WireError):
            await read_message(_reader_of(one[:cut]))
    bad_kind = b"".join(pack(Kind.DONE))
    with pytest.raises(WireError, match="kind 99"):
        await read_message(_reader_of(bytes([99]) + bad_kind[1:]))


def test_a_picture_crosses_as_i420_with_its_colour_tags() -> None:
    rng = np.random.default_rng(0)
    planes = rng.integers(0, 256, (48 * 3 // 2, 64), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
    frame.colorspace, frame.color_range = 1, 2  # BT.709, full range
    back = i420_frame(i420_planes(frame), 64, 48, frame.colorspace, frame.color_range)
    np.testing.assert_array_equal(back.to_ndarray(), planes)
    assert (back.colorspace, back.color_range) == (1, 2)
    rgb = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
    assert len(i420_planes(rgb)) == 64 * 48 * 3 // 2  # converted first


def test_the_worker_sends_only_the_counts_that_moved_and_not_those_the_front_keeps() -> None:
    telemetry, sent = Telemetry(), Counter[str]()
    telemetry.count("frames_in", 3)  # the front counts these itself
    telemetry.count("mode_lipsync")
    telemetry.count("window_cut_short", 2)
    telemetry.note("watermark run id 1a2b3c4d")
    assert changed_counts(telemetry, sent) == {"window_cut_short": 2, "event:watermark run id 1a2b3c4d": 1}
    assert changed_counts(telemetry, sent) == {}
    telemetry.count("window_cut_short")
    assert changed_counts(telemetry, sent) == {"window_cut_short": 1}


def _photo_frame(photo: Path) -> av.VideoFrame:
    import cv2

    rgb = np.ascontiguousarray(cv2.imread(str(photo))[:, :, ::-1])
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


async def _stream(
    session: WorkerSession, frame: av.VideoFrame, seconds: float, midway: object = None
) -> list[str]:
    """Feeds `frame` at 25 fps with a 200 Hz tone for `seconds`, delivering what comes back;
    calls `midway` (if given) halfway. The modes of the frames that came back, in order."""
    modes: list[str] = []

    async def take() -> None:
        while (out := await session.next_frame()) is not None:
            modes.append(out.mode)
            session.delivered(out, time.monotonic_ns(), None)

    taker = asyncio.create_task(take())
    frames = int(seconds * 25)
    t = np.arange(640) / 16_000
    for i in range(frames):
        now_ns = time.monotonic_ns()
        session.push_audio(
            (0.3 * np.sin(2 * np.pi * 200 * (t + i * 0.04))).astype(np.float32), now_ns - 40_000_000
        )
        await session.push_video(frame, now_ns)
        if i == frames // 2 and callable(midway):
            midway()
        await asyncio.sleep(0.04)
    await session.end()
    await asyncio.wait_for(taker, 10)
    return modes


def _spec(weights: Path) -> WorkerSpec:
    return WorkerSpec(weights, "ort-cpu", SessionConfig(budget_ms=1000.0))


@dataclass
class _Faulted:
    modes: list[str]  # of every frame that came back, in order
    first_pid: int  # the worker the fault hit
    last_pid: int | None  # the one serving at the end
    session: WorkerSession


async def _stream_with_fault(weights: Path, photo: Path, signum: signal.Signals) -> _Faulted:
    """14 s of `photo` through a session whose worker gets `signum` halfway."""
    pipelines = WorkerPipelines(_spec(weights))
    pipelines.warm()
    session = await pipelines.open_session("fault")
    assert isinstance(session, WorkerSession)
    try:
        first_pid = session.worker_pid
        assert first_pid is not None
        modes = await _stream(session, _photo_frame(photo), 14.0, lambda: os.kill(first_pid, signum))
        return _Faulted(modes, first_pid, session.worker_pid, session)
    finally:
        await session.aclose()
        await pipelines.aclose()


@pytest.mark.slow
async def test_a_worker_killed_mid_stream_is_replaced_and_the_video_never_stops(
    cpu_rt_export: Path, rt_face_photo: Path
) -> None:
    run = await _stream_with_fault(cpu_rt_export, rt_face_photo, signal.SIGKILL)
    modes = run.modes
    assert len(modes) >= 14 * 25 * 0.9, len(modes)  # every frame came back, lip-synced or not
    killed_at = modes.index("error")  # the frames passed through while the next worker took over
    assert modes[:killed_at].count("lipsync") >= 60, Counter(modes[:killed_at])
    after = modes[killed_at:]
    assert 1 <= after.count("error") < 50 and after.count("lipsync") >= 60, Counter(after)
    assert run.last_pid not in (None, run.first_pid)
    events = run.session.telemetry.summary()["events"]
    assert any(f"worker {run.first_pid} exited" in e for e in events), events
    counts = run.session.telemetry.counts  # the worker's counts reached the front's record
    assert counts["reference_encoded"] >= 2 and counts["frames_out"] == len(modes)


@pytest.mark.slow
async def test_a_hung_worker_is_killed_past_its_frames_deadline_and_replaced(
    cpu_rt_export: Path, rt_face_photo: Path
) -> None:
    """SIGSTOP: the worker neither dies nor answers. Once the frame it holds is `STALL_GRACE_S`
    past its deadline (1 s budget here) it is killed; the video passes through, then the spare
    lip-syncs it again. Without the watchdog no frame came back after the stop."""
    run = await _stream_with_fault(cpu_rt_export, rt_face_photo, signal.SIGSTOP)
    modes = run.modes
    assert len(modes) >= 14 * 25 * 0.8, len(modes)  # lost: what the stopped worker held
    after = modes[modes.index("error") :]
    assert after.count("lipsync") >= 60, Counter(after)
    assert run.last_pid not in (None, run.first_pid)
    assert not Path(f"/proc/{run.first_pid}").exists()  # killed and reaped, not left stopped


@pytest.mark.slow
async def test_a_worker_that_cannot_load_leaves_the_video_passing_through(
    cpu_rt_export: Path, rt_face_photo: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(cpu_rt_export, broken)
    for graph in broken.glob("*.onnx"):
        graph.write_bytes(b"not a graph")
    pipelines = WorkerPipelines(_spec(broken))
    session = await pipelines.open_session("b")
    try:
        modes = await _stream(session, _photo_frame(rt_face_photo), 12.0)
    finally:
        await session.aclose()
        await pipelines.aclose()
    assert len(modes) >= 12 * 25 * 0.9 and set(modes) <= {"warmup", "error"}, Counter(modes)
    assert "error" in modes  # after the first worker reported its failure
    failures = [e for e in session.telemetry.summary()["events"] if "loading the session failed" in e]
    assert len(failures) == MAX_RESTARTS + 1, failures  # then no more workers


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_demo_serve_loads_a_worker_ahead_and_takes_it_down_at_exit() -> None:
    """`stablesync demo --serve` opens its pipelines as `serve` does: a worker for the first peer
    starts loading once it listens (a child process), and SIGTERM ends it with the server."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "stablesync", "demo", "--serve", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        opened = proc.stdout.readline()
        assert opened.startswith("stablesync demo: open http://"), (
            opened,
            proc.stderr.read() if proc.poll() else "",
        )
        deadline = time.monotonic() + 30
        workers: list[int] = []
        while not workers and time.monotonic() < deadline:
            workers = _children(proc.pid)
            time.sleep(0.2)
        assert len(workers) == 1, workers  # the spare
        cmdline = Path(f"/proc/{workers[0]}/cmdline").read_bytes()
        assert b"stablesync.realtime.webrtc.session_worker" in cmdline
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not Path(f"/proc/{workers[0]}").exists()  # gone, not left running on its own
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
async def test_spares_are_kept_loading_and_each_taken_one_is_replaced(cpu_rt_export: Path) -> None:
    """`serve --spares N`: N workers start as soon as the server warms up, taking one starts
    the next, and closing takes every spare down; with 0, a worker starts only when asked for."""
    before = set(_children(os.getpid()))  # what else runs beside (multiprocessing's resource tracker)

    def workers() -> list[int]:
        return sorted(set(_children(os.getpid())) - before)

    pipelines = WorkerPipelines(_spec(cpu_rt_export), spares=2)
    pipelines.warm()
    pipelines.warm()  # idempotent: still two
    taken = None
    try:
        await asyncio.sleep(0)  # the spares' start tasks run
        spawned = [await task for task in list(pipelines._spares)]
        assert workers() == sorted(w.pid for w in spawned)
        taken = await pipelines.take_worker()
        assert taken.pid == spawned[0].pid  # the oldest spare, the likeliest to be loaded
        await asyncio.sleep(0)
        assert len(pipelines._spares) == 2 and len(workers()) == 3
    finally:
        await pipelines.aclose()
        if taken is not None:
            await taken.close()
    assert workers() == []
    none_ahead = WorkerPipelines(_spec(cpu_rt_export), spares=0)
    none_ahead.warm()
    assert len(none_ahead._spares) == 0 and workers() == []
    worker = await none_ahead.take_worker()
    try:
        assert workers() == [worker.pid]
    finally:
        await worker.close()
        await none_ahead.aclose()
    with pytest.raises(ValueError, match="spares"):
        WorkerPipelines(_spec(cpu_rt_export), spares=-1)
