"""Generator speed: per-frame milliseconds for each preset x backend x batch, params and GFLOPs.

    python -m stablesync.benchmarks.generator --out runs/bench/generator.json [--quick]

Each preset (random-init weights: speed does not depend on their values) is exported with
`stablesync export`'s code (cpu-rt also with --int8) into a temporary folder and opened with
`stablesync.export.load_engine` on every backend available here. For batch B it times
- `cached`: `generate` alone (reference features cached, the real-time case), per frame;
- `with_ref`: `encode_reference` + `generate` for B new faces, per frame.
Medians (and minima: on a shared machine the least disturbed call) of `--runs` timed calls
after warm-up; the load average is recorded beside them; onnxruntime and torch use `--threads` CPU threads.
Params and GFLOPs per frame (per-frame part and reference part) come from
`stablesync.models.cli.preset_costs` (torch.utils.flop_counter; a multiply-add counts 2 FLOPs).
`--quick`: cpu-rt on onnxruntime (fp32 and int8) only, batches 1 and 4 (the sizes of every preset
are still listed).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stablesync.benchmarks.common import write_result

BATCHES = (1, 2, 4, 8)


def _median_ms(fn: Callable[[], object], runs: int, warmup: int = 2) -> tuple[float, list[float]]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(samples), samples


def bench_engine(engine: Any, batch: int, runs: int, seed: int = 0) -> dict[str, Any]:
    m = engine.manifest
    rng = np.random.default_rng(seed)
    s = m.image_size
    images = rng.random((batch, 3, s, s), dtype=np.float32)
    frames = rng.random((batch, 3, s, s), dtype=np.float32)
    mels = rng.uniform(-4, 4, (batch, 1, m.mel.n_mels, m.window_frames)).astype(np.float32)
    feats = engine.encode_reference(images)
    cached_ms, samples = _median_ms(lambda: engine.generate(feats, frames, mels), runs)
    with_ref_ms, _ = _median_ms(
        lambda: engine.generate(engine.encode_reference(images), frames, mels), max(3, runs // 3), warmup=1
    )
    return {
        "cached_ms_per_frame": cached_ms / batch,
        "cached_min_ms_per_frame": min(samples) / batch,
        "with_ref_ms_per_frame": with_ref_ms / batch,
        "fps_cached": 1000.0 * batch / cached_ms,
        "samples_ms_per_frame": [x / batch for x in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("runs/bench/generator.json"))
    parser.add_argument(
        "--quick",
        action="store_true",
        help="cpu-rt on onnxruntime fp32/int8 only (sizes of all), batches 1 and 4",
    )
    parser.add_argument("--presets", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--runs", type=int, default=None, help="timed calls per figure (default 30, quick 10)"
    )
    args = parser.parse_args(argv)

    import torch

    from stablesync.export import load_engine
    from stablesync.export.backends import available_backends
    from stablesync.export.exporter import ExportOptions, export_model
    from stablesync.models import create, list_presets
    from stablesync.models.cli import preset_costs

    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    presets = args.presets or (["cpu-rt"] if args.quick else list_presets())
    batches = (1, 4) if args.quick else BATCHES
    runs = args.runs or (10 if args.quick else 30)
    # --quick: onnxruntime only (fp32 and int8), no fp16-storage variant: the suite has 3 minutes
    backends = [b for b in available_backends() if not (args.quick and b == "torch")]
    rows: list[dict[str, Any]] = []
    costs = {name: preset_costs(name) for name in list_presets()}  # meta device: instant
    samples: dict[str, list[float]] = {}
    int8: dict[str, Any] = {}
    shipping: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            torch.manual_seed(0)
            model = create(preset).eval()
            big = model.cfg.generator.image_size > 128
            options = ExportOptions(
                parity_batch=1, int8=preset == "cpu-rt", intra_op_threads=args.threads, write_checkpoint=True
            )
            directory = Path(tmp) / preset
            manifest = export_model(
                model, directory, options, preset=preset, log=lambda line: print(" ", line)
            )
            variants = [(b, b, {}) for b in backends]
            if "frame_int8" in manifest.graphs:
                variants = [(b, b, {"prefer_int8": False}) for b in backends]
                variants.append(("ort-cpu-int8", "ort-cpu", {"prefer_int8": True}))
                int8 = {"psnr_db": manifest.int8_psnr_db, "export_speedup": manifest.int8_speedup}
            dirs = {label: directory for label, _, _ in variants}
            if (
                preset == "cpu-rt" and not args.quick
            ):  # the shipping form: fp16-stored weights, same graphs otherwise
                fp16_dir = Path(tmp) / f"{preset}-fp16w"
                fp16_options = dataclasses.replace(options, int8=False, fp16_weights=True)
                fp16_manifest = export_model(
                    create(preset).eval(), fp16_dir, fp16_options, preset=preset, log=print
                )
                variants.append(("ort-cpu-fp16w", "ort-cpu", {"prefer_int8": False}))
                dirs["ort-cpu-fp16w"] = fp16_dir
                shipping = {
                    name: (fp16_dir / name).stat().st_size / 1e6
                    for name in ("reference.onnx", "frame.onnx", fp16_manifest.checkpoint)
                }
                shipping["total"] = sum(shipping.values())
                shipping["fp16_parity_max_abs_error"] = max(fp16_manifest.parity_max_abs_error.values())
            for label, backend, kwargs in variants:
                engine = load_engine(dirs[label], backend, intra_op_threads=args.threads, **kwargs)
                for batch in batches:
                    n = max(3, runs // 5) if big else runs
                    result = bench_engine(engine, batch, n)
                    samples[f"{preset} {label} b{batch}"] = result.pop("samples_ms_per_frame")
                    rows.append({"preset": preset, "backend": label, "batch": batch, **result})
                    print(
                        f"{preset:<8} {label:<13} b{batch}:"
                        f" {result['cached_ms_per_frame']:7.2f} ms/frame cached,"
                        f" {result['with_ref_ms_per_frame']:8.2f} ms/frame with reference",
                        flush=True,
                    )
                del engine
            del model
    if int8:
        fp32 = next(
            r for r in rows if r["preset"] == "cpu-rt" and r["backend"] == "ort-cpu" and r["batch"] == 1
        )
        q = next(
            r for r in rows if r["preset"] == "cpu-rt" and r["backend"] == "ort-cpu-int8" and r["batch"] == 1
        )
        int8["fp32_ms"], int8["int8_ms"] = fp32["cached_ms_per_frame"], q["cached_ms_per_frame"]
        int8["speedup_b1"] = fp32["cached_ms_per_frame"] / q["cached_ms_per_frame"]
    print()
    print(render_table(rows, costs))
    if int8:
        print(
            "\ncpu-rt fp32 vs int8 (ort-cpu, batch 1):"
            f" {int8['fp32_ms']:.2f} -> {int8['int8_ms']:.2f} ms/frame"
            f" (x{int8['speedup_b1']:.2f}), int8 PSNR vs fp32 {int8['psnr_db']} dB"
        )
    if shipping:
        print(
            f"cpu-rt shipping set with fp16 weights: {shipping['total']:.1f} MB"
            f" (parity max abs error {shipping['fp16_parity_max_abs_error']:.1e})"
        )
    load_1m = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load_1m:.1f} on {os.cpu_count()} cores")
    figures = {
        "threads": args.threads,
        "load_average_1m_end": load_1m,
        "load_average_1m_start": load_start,
        "quick": args.quick,
        "backends": backends,
        "costs": costs,
        "rows": rows,
        "cpu_rt_int8": int8,
        "cpu_rt_fp16_weights_mb": shipping,
        "samples": {k: v for k, v in samples.items() if k.endswith("b1")},
        "samples_unit": "ms per frame (reference cached)",
    }
    path = write_result(args.out, "generator", figures)
    print(f"wrote {path}")
    return 0


def render_table(rows: list[dict[str, Any]], costs: dict[str, dict[str, float]]) -> str:
    lines = [
        "| preset | params (M) | GFLOPs/frame | GFLOPs/ref | backend | batch"
        " | ms/frame cached (median) | (min) | ms/frame with ref | fps cached |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        c = costs[r["preset"]]
        lines.append(
            f"| {r['preset']} | {c['params_m']:.2f} | {c['gflops_per_frame']:.2f}"
            f" | {c['gflops_reference']:.2f} | {r['backend']} | {r['batch']}"
            f" | {r['cached_ms_per_frame']:.2f} | {r['cached_min_ms_per_frame']:.2f}"
            f" | {r['with_ref_ms_per_frame']:.2f}"
            f" | {r['fps_cached']:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
