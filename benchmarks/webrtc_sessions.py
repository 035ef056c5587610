"""`stablesync serve` with N loopback WebRTC peers at once (N = 1, 2, 4, 8 by default), each for
`--seconds` (default 60): per-session fps, glass-to-glass p50/p95 and A/V offset measured at the
receiving peer, the server's CPU per session and per frame (its session workers' included), why
frames passed through (the server's late counts and stage times), and the server's memory (RSS)
at start and after every N (its session workers' together beside it).

`python -m stablesync.benchmarks.webrtc_sessions --out benchmarks/out/webrtc_sessions.json [--seconds 60]
[--quick] [--sessions 1,2,4,8] [--weights DIR] [--backend auto|passthrough|...] [--in-process]`

The server runs in its own process (on the CPU backend each session in a worker process of
its own, `--in-process` passed on: all in the server's, one batcher for every peer); the peers are
aiortc clients (realtime/webrtc/client.py) in this process, all on 127.0.0.1. Each sends the
demo face and speech with marks (frame index in the top strip, a 12 kHz tone each second), so
latency and A/V offset are measured from what comes back, on this process's own clock.
Weights: `--weights DIR`, else the bundled cpu-rt export, else a random-init cpu-rt export made
for the run (same graphs and speed; recorded as "weights").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.benchmarks.common import children, proc_stat, rss_mb, workers_rss_mb, write_result
from stablesync.benchmarks.inputs import bench_weights, demo_face_and_speech, speech_like

SERVER_START_TIMEOUT_S = 120.0


def cpu_s(pid: int) -> float:
    """CPU time (user + system, every thread) a process and its children (live, and exited ones
    it has waited for: the session workers of `serve`) have used so far, from /proc (Linux)."""
    fields = proc_stat(pid)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += cpu_s(child)
    return total


def _clip(width_px: int = 320) -> Any:
    import cv2

    from stablesync.audio import resample
    from stablesync.realtime.webrtc.clip import SEND_RATE_HZ, Clip

    face, speech = demo_face_and_speech()
    speech = speech_like(8.0) if speech is None else speech
    image = cv2.cvtColor(cv2.imread(str(face)), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    image = cv2.resize(image, (width_px, round(h * width_px / w) // 2 * 2))
    frames = np.repeat(image[None], int(len(speech) / 16_000 * 25), axis=0)
    return Clip(frames, 25.0, resample(speech, 16_000, SEND_RATE_HZ), face.stem)


def _status(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "status", timeout=5) as r:
        value: dict[str, Any] = json.loads(r.read())
        return value


def _start_server(
    args: argparse.Namespace, weights: Path | None, log_path: Path
) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "stablesync.cli", "serve", "--port", "0", "--backend", args.backend]
    cmd += ["--max-sessions", str(max(args.sessions))]
    cmd += ["--weights", str(weights)] if weights is not None else []
    cmd += ["--in-process"] if args.in_process else []
    cmd += ["--spares", str(args.spares)] if args.spares is not None else []
    log = log_path.open("w")
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
    assert server.stdout is not None
    began = time.monotonic()
    for line in server.stdout:
        if "open http" in line:
            return server, line.split("open ", 1)[1].split()[0].split("#")[0]
        if time.monotonic() - began > SERVER_START_TIMEOUT_S:
            break
    server.kill()
    raise RuntimeError(f"the server did not start; see {log_path}")


def _per_session(result: Any) -> dict[str, Any]:
    s = result.summary()
    server = s["server"] or {}
    modes = server.get("modes", {})
    out = max(1, server.get("frames_out", 0))
    return {
        "fps": s["fps"],
        "glass_to_glass_ms": s["glass_to_glass_ms"],
        "av_offset_ms_p50": s["av_offset_ms"]["p50"],
        "av_offset_pairs": s["av_offset_ms"]["n"],
        "lipsync_fraction": round(modes.get("lipsync", 0) / out, 3),
        "late_frames": server.get("late_frames"),
        "dropped_frames": server.get("dropped_frames"),
        "server_latency_ms": server.get("server_latency_ms"),
        "sync_delay_ms": server.get("sync_delay_ms"),
        "pipeline": server.get("pipeline"),
        "modes": modes,
        "error": s["error"],
    }


async def _round(url: str, clip: Any, n: int, seconds: float) -> list[Any]:
    from stablesync.realtime.webrtc.client import run_client

    return list(
        await asyncio.gather(*(run_client(url, clip, seconds, settle_s=1.0 + 0.1 * i) for i in range(n)))
    )


def _wait_idle(url: str, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _status(url)["sessions"]:
        time.sleep(0.2)


def _weights(args: argparse.Namespace, tmp: Path) -> tuple[Path | None, str]:
    if args.backend == "passthrough":
        return None, "none (passthrough)"
    return bench_weights(args.weights, tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.benchmarks.webrtc_sessions", description=__doc__
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/webrtc_sessions.json"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="N = 1, 2 for 6 s each")
    parser.add_argument("--sessions", default="1,2,4,8", help="comma-separated session counts")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--in-process", action="store_true", help="serve --in-process: one process")
    parser.add_argument("--spares", type=int, default=None, help="serve --spares N (default: serve's)")
    parser.add_argument(
        "--idle-s",
        type=float,
        default=0.0,
        help="seconds the server sits idle before the first round (its spare workers load, as on a"
        " server that has been up a while); default 0: the peers come as soon as it listens",
    )
    args = parser.parse_args(argv)
    args.sessions = [1, 2] if args.quick else [int(n) for n in args.sessions.split(",")]
    seconds = 6.0 if args.quick else args.seconds
    clip = _clip()
    figures: dict[str, Any] = {"seconds": seconds, "clip": clip.name, "runs": {}, "samples": {}}
    with tempfile.TemporaryDirectory() as tmp:
        weights, figures["weights"] = _weights(args, Path(tmp))
        server, url = _start_server(args, weights, Path(tmp) / "server.log")
        try:
            figures["backend"] = _status(url)["mode"]
            figures["sessions_in"] = (
                "one process" if args.in_process else "a worker process each (CPU backend)"
            )
            figures["server_rss_mb_start"] = round(rss_mb(server.pid), 1)
            figures["idle_s"] = args.idle_s
            time.sleep(args.idle_s)
            for n in args.sessions:
                rss_before = round(rss_mb(server.pid), 1)
                cpu_before, began = cpu_s(server.pid), time.monotonic()
                results = asyncio.run(_round(url, clip, n, seconds))
                cpu_used, took_s = cpu_s(server.pid) - cpu_before, time.monotonic() - began
                _wait_idle(url)
                sessions = [_per_session(r) for r in results]
                frames_out = sum((r.summary()["server"] or {}).get("frames_out", 0) for r in results)
                fps = [s["fps"] for s in sessions]
                g2g = [g for r in results for g in r.glass_to_glass_ms]
                av = [a for r in results for a in r.av_offset_ms]
                figures["runs"][str(n)] = {
                    "sessions": sessions,
                    "fps_min": min(fps),
                    "fps_mean": round(float(np.mean(fps)), 2),
                    "glass_to_glass_ms_p95": round(float(np.percentile(g2g, 95)), 1) if g2g else None,
                    "av_offset_ms_p50": round(float(np.median(av)), 1) if av else None,
                    "lipsync_fraction_min": min(s["lipsync_fraction"] for s in sessions),
                    # the server's CPU over the round (connecting and closing included), per session
                    # and per frame it sent back: what a session costs whatever else the machine runs
                    "server_cpu_cores_per_session": round(cpu_used / took_s / n, 3),
                    "server_cpu_ms_per_frame": round(cpu_used * 1000 / max(frames_out, 1), 2),
                    "load_average_1m": round(os.getloadavg()[0], 2),
                    "server_rss_mb_before": rss_before,
                    "server_rss_mb_after": round(rss_mb(server.pid), 1),
                    "workers_rss_mb_after": round(workers_rss_mb(server.pid), 1),
                }
                figures["samples"][f"glass-to-glass ms, {n} session(s)"] = [round(g, 1) for g in g2g]
                r = figures["runs"][str(n)]
                print(
                    f"N={n}: fps min {r['fps_min']} mean {r['fps_mean']},"
                    f" g2g p95 {r['glass_to_glass_ms_p95']} ms,"
                    f" A/V {r['av_offset_ms_p50']} ms, lipsync >= {r['lipsync_fraction_min']:.0%},"
                    f" server CPU {r['server_cpu_cores_per_session']} cores/session"
                    f" ({r['server_cpu_ms_per_frame']} ms/frame), load {r['load_average_1m']},"
                    f" RSS {r['server_rss_mb_before']} -> {r['server_rss_mb_after']} MB",
                    flush=True,
                )
            figures["server_rss_mb_end"] = round(rss_mb(server.pid), 1)
            full = [
                n
                for n, r in figures["runs"].items()
                if r["fps_min"] >= 24.0 and r["lipsync_fraction_min"] >= 0.9
            ]
            figures["sessions_at_25fps"] = max((int(n) for n in full), default=0)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    path = write_result(args.out, "webrtc_sessions", figures)
    print(f"sessions holding 25 fps with >= 90% lip-synced frames: {figures['sessions_at_25fps']} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
