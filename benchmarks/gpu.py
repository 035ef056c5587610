"""One GPU, one command: the torch CUDA backend's speed per batch, how many 25 fps sessions the
`InferenceBatcher` holds on it, and the first frame's latency.

`python -m stablesync.benchmarks.gpu --out benchmarks/results/gpu.json [--quick] [--weights DIR]` (part of
`stablesync bench`; under 8 minutes, no network: PyTorch with CUDA, onnxruntime, numpy). Without
CUDA it says so in one line and writes a "skipped" result, never over an earlier GPU result.

- `batches`: the "torch" backend (fp16, one CUDA graph per batch size) on the export's
  checkpoint (default the bundled cpu-rt), per call and per frame ms at batch 1..64, numpy in
  and out as the real-time path calls it;
- `first_frame`: opening the engine (checkpoint load, fold, to GPU), the first call (CUDA graph
  capture), and with the engine warm a new session's first frame (reference encoding + one
  frame);
- `sessions`: N synthetic sessions (random crops and mel windows, no face tracking), each
  submitting one frame every 40 ms with a deadline `--deadline-ms` ahead, through one batcher
  (max batch 64, every batch size run once beforehand); N grows until fewer than 99% of the
  frames come back generated in time. `sessions_held` is the largest N that passed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.benchmarks.common import write_result

BATCHES = (1, 2, 4, 8, 16, 32, 64)
SESSION_MAX_BATCH = 64  # the batcher's max_batch in the session steps
SESSION_STEPS = (1, 8, 16, 32, 48, 64, 96, 128, 192, 256, 384, 512)
FRAME_INTERVAL_MS = 40.0  # 25 fps
MIN_ON_TIME = 0.99
WALL_LIMIT_S = 420.0  # the session steps stop here, leaving room under 8 minutes


def _inputs(manifest: Any, batch: int, rng: np.random.Generator) -> tuple[Any, Any]:
    s, lim = manifest.image_size, manifest.mel.max_abs_value
    frames = rng.random((batch, 3, s, s), dtype=np.float32)
    mels = rng.uniform(-lim, lim, (batch, 1, manifest.mel.n_mels, manifest.window_frames)).astype(np.float32)
    return frames, mels


def time_batches(engine: Any, batches: tuple[int, ...], runs: int) -> list[dict[str, Any]]:
    """Per call and per frame ms of `generate` at each batch size (after capture and warm-up)."""
    rng = np.random.default_rng(0)
    feats = engine.encode_reference(_inputs(engine.manifest, 1, rng)[0])
    rows = []
    for batch in batches:
        frames, mels = _inputs(engine.manifest, batch, rng)
        batch_feats = tuple(np.repeat(f, batch, axis=0) for f in feats)
        for _ in range(3):
            engine.generate(batch_feats, frames, mels)
        times_ms = []
        for _ in range(runs):
            t0 = time.perf_counter()
            engine.generate(batch_feats, frames, mels)
            times_ms.append((time.perf_counter() - t0) * 1000.0)
        call_ms = float(np.median(times_ms))
        rows.append(
            {
                "batch": batch,
                "call_ms_p50": round(call_ms, 3),
                "call_ms_p95": round(float(np.percentile(times_ms, 95)), 3),
                "frame_ms": round(call_ms / batch, 4),
                "frames_per_s": round(1000.0 * batch / call_ms, 1),
            }
        )
        print(
            f"gpu: batch {batch:>3}: {call_ms:.2f} ms per call, {call_ms / batch:.3f} ms per frame",
            flush=True,
        )
    return rows


def warm_all_batches(engine: Any, max_sessions: int) -> None:
    """Runs every batch size the session steps can gather once, so that no CUDA graph capture
    lands inside a timed step (a capture is one slow batch, which the batcher's estimate sees)."""
    rng = np.random.default_rng(2)
    feats = engine.encode_reference(_inputs(engine.manifest, 1, rng)[0])
    for batch in range(1, min(SESSION_MAX_BATCH, max_sessions) + 1):
        frames, mels = _inputs(engine.manifest, batch, rng)
        engine.generate(tuple(np.repeat(f, batch, axis=0) for f in feats), frames, mels)


async def _session(
    batcher: Any, manifest: Any, seconds: float, deadline_ms: float, seed: int
) -> dict[str, Any]:
    """One synthetic session: a frame every 40 ms (random phase) for `seconds`; counts answers."""
    from stablesync.realtime.pipeline.frames import NS_PER_MS

    rng = np.random.default_rng(seed)
    frames, mels = _inputs(manifest, 4, rng)
    features = await batcher.encode_reference(frames[:1])
    features = tuple(f[0] for f in features)
    await asyncio.sleep(rng.uniform(0.0, FRAME_INTERVAL_MS / 1000.0))
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = generated = 0
    latencies_ms: list[float] = []
    while loop.time() - start < seconds:
        due = start + sent * FRAME_INTERVAL_MS / 1000.0
        await asyncio.sleep(max(0.0, due - loop.time()))
        t0 = batcher.clock.monotonic_ns()
        out = await batcher.submit(
            features, frames[sent % 4], mels[sent % 4], t0 + int(deadline_ms * NS_PER_MS)
        )
        sent += 1
        if out is not None:
            generated += 1
            latencies_ms.append((batcher.clock.monotonic_ns() - t0) / NS_PER_MS)
    return {"sent": sent, "generated": generated, "latencies_ms": latencies_ms}


async def run_sessions(engine: Any, n: int, seconds: float, deadline_ms: float) -> dict[str, Any]:
    from stablesync.realtime.pipeline.batcher import BatcherConfig, InferenceBatcher

    batcher = InferenceBatcher(engine, BatcherConfig(max_batch=SESSION_MAX_BATCH, queue_size=4 * max(n, 16)))
    await batcher.start()
    await batcher.warmup()
    batcher.clients = n
    try:
        done = await asyncio.gather(
            *(_session(batcher, engine.manifest, seconds, deadline_ms, i) for i in range(n))
        )
    finally:
        await batcher.close()
    sent = sum(d["sent"] for d in done)
    generated = sum(d["generated"] for d in done)
    lat = [x for d in done for x in d["latencies_ms"]]
    return {
        "sessions": n,
        "on_time_fraction": round(generated / max(sent, 1), 4),
        "fps_per_session": round(generated / n / seconds, 2),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat else None,
        "mean_batch": round(batcher.items_run / max(batcher.batches_run, 1), 2),
        "refused_late": batcher.refused_late,
    }


def first_frame(directory: Path) -> tuple[Any, dict[str, float]]:
    """Opens the engine; times the open, the first (capturing) call, and a warm session's first frame."""
    from stablesync.export.backends.torch_engine import TorchEngine
    from stablesync.export.manifest import read_manifest

    t0 = time.perf_counter()
    engine = TorchEngine(directory, read_manifest(directory))
    t1 = time.perf_counter()
    rng = np.random.default_rng(1)
    frames, mels = _inputs(engine.manifest, 1, rng)
    engine.generate(engine.encode_reference(frames), frames, mels)
    t2 = time.perf_counter()
    frames, mels = _inputs(engine.manifest, 1, rng)
    engine.generate(engine.encode_reference(frames), frames, mels)
    t3 = time.perf_counter()
    figures = {
        "engine_open_ms": round((t1 - t0) * 1000.0, 1),
        "first_call_ms": round((t2 - t1) * 1000.0, 1),
        "warm_session_first_frame_ms": round((t3 - t2) * 1000.0, 2),
    }
    print(f"gpu: first frame: {figures}", flush=True)
    return engine, figures


def _skip(out: Path, reason: str) -> int:
    """One line; a "skipped" result unless `out` already holds a GPU's figures."""
    print(f"gpu: skipped: {reason}")
    try:
        earlier = json.loads(out.read_text())
    except (OSError, json.JSONDecodeError):
        earlier = {}
    if not earlier.get("figures", {}).get("device"):
        write_result(out, "gpu", {"skipped": reason})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/gpu.json"))
    parser.add_argument("--quick", action="store_true", help="batches 1, 8, 64; 3-s session steps")
    parser.add_argument(
        "--weights", type=Path, default=None, help="export directory (default: bundled cpu-rt)"
    )
    parser.add_argument("--seconds", type=float, default=None, help="per session step (default 8, quick 3)")
    parser.add_argument("--deadline-ms", type=float, default=100.0, help="submit -> answer deadline")
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (a smoke test of this script)")
    parser.add_argument("--max-sessions", type=int, default=SESSION_STEPS[-1])
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default 1..64)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        import torch
    except ImportError:
        return _skip(args.out, "PyTorch is not installed")
    if not torch.cuda.is_available() and not args.allow_cpu:
        return _skip(args.out, "no CUDA device")
    from stablesync.realtime.pipeline.loading import resolve_weights

    if not torch.cuda.is_available():
        torch.set_num_threads(2)  # the CPU smoke test: this machine's cores, not more threads
    directory = resolve_weights(args.weights)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (smoke test)"
    engine, first = first_frame(directory)
    batches: tuple[int, ...] = (1, 8, 64) if args.quick else BATCHES
    if args.batches:
        batches = tuple(int(b) for b in args.batches.split(","))
    rows = time_batches(engine, batches, runs=10 if args.quick else 30)
    seconds = args.seconds or (3.0 if args.quick else 8.0)
    warm_all_batches(engine, args.max_sessions)
    steps, held = [], 0
    for n in (s for s in SESSION_STEPS if s <= args.max_sessions):
        if time.monotonic() - start + seconds + 5.0 > WALL_LIMIT_S:
            print(f"gpu: stopping before {n} sessions: the run's time limit", flush=True)
            break
        step = asyncio.run(run_sessions(engine, n, seconds, args.deadline_ms))
        steps.append(step)
        print(f"gpu: sessions {step}", flush=True)
        if step["on_time_fraction"] < MIN_ON_TIME:
            break
        held = n
    figures = {
        "device": device,
        "backend": "torch (fp16, CUDA graphs)" if torch.cuda.is_available() else "torch (cpu fp32)",
        "weights": str(directory),
        "first_frame": first,
        "batches": rows,
        "deadline_ms": args.deadline_ms,
        "sessions_held": held,
        "session_steps": steps,
        "wall_s": round(time.monotonic() - start, 1),
        "samples": {f"b{r['batch']} frame ms": [r["frame_ms"]] for r in rows},
        "samples_unit": "ms per frame",
    }
    write_result(args.out, "gpu", figures)
    print(f"gpu: {device}: {held} sessions held at 25 fps; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
