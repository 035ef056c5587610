"""`--int8`: onnxruntime static quantisation (QDQ, per-channel int8 weights) of frame.onnx.

Calibrated on corpus-like inputs; frame_int8.onnx is kept only if its output is within 35 dB
PSNR of the fp32 graph's on those inputs. The speed-up (batch 1, onnxruntime CPU) is printed
and stored in the manifest. No torch.

`python -m stablesync.export.quantize DIR --corpus PREPARED [--samples 32] [--calibration minmax|entropy|
percentile] [--percentile 99.999] [--op-types Conv,Gemm] [--keep-fp32 PART,...]` quantises an existing
export in place, calibrated on the prepared dataset's train split (its val and test clips stay
unseen for `python -m stablesync.export.int8_quality`). `--op-types` quantises only those operator
types (the others, e.g. the elementwise Add/Mul/Concat, stay in fp32).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from stablesync.export.backends.ort import open_session
from stablesync.export.manifest import (
    MIN_INT8_PSNR_DB,
    GraphInfo,
    Manifest,
    read_manifest,
    sha256_file,
    write_manifest,
)
from stablesync.export.sample_inputs import SampleInputs
from stablesync.train.data import PreparedData, generator_mel, to_chw

Feeds = dict[str, NDArray[np.float32]]
CALIBRATION = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


@dataclasses.dataclass(frozen=True)
class QuantOptions:
    """How onnxruntime quantises: calibration method, the operator types quantised (empty: all it
    can) and the node-name parts kept in fp32."""

    calibration: str = "minmax"
    percentile: float = 99.999
    op_types: tuple[str, ...] = ()
    keep_fp32: tuple[str, ...] = ()


class _Feeds(CalibrationDataReader):  # type: ignore[misc]
    def __init__(self, feeds: list[Feeds]) -> None:
        self._items = iter(feeds)

    def get_next(self) -> Feeds | None:
        return next(self._items, None)


def psnr_db(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    """PSNR of images in [0, 1]."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0.0 else 10.0 * np.log10(1.0 / mse)


def per_frame_ms(session: ort.InferenceSession, feeds: Feeds, runs: int = 20) -> float:
    for _ in range(3):
        session.run(None, feeds)
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, feeds)
    return (time.perf_counter() - start) / runs * 1000.0 / len(feeds["frames"])


def frame_feeds(directory: Path, manifest: Manifest, samples: SampleInputs) -> list[Feeds]:
    """One single-item feed dict of frame.onnx per sample (features from reference.onnx)."""
    reference = open_session(directory / manifest.graphs["reference"].file)
    feats = reference.run(None, {"reference": samples.images})
    feeds = []
    for i in range(len(samples.frames)):
        item: Feeds = {n: f[i : i + 1] for n, f in zip(manifest.feature_names(), feats, strict=True)}
        item["frames"], item["mels"] = samples.frames[i : i + 1], samples.mels[i : i + 1]
        feeds.append(item)
    return feeds


def quantize_frame(
    directory: Path,
    manifest: Manifest,
    samples: SampleInputs,
    log: Callable[[str], None] = print,
    min_psnr_db: float = MIN_INT8_PSNR_DB,
    options: QuantOptions = QuantOptions(),
) -> Manifest:
    """Writes frame_int8.onnx into `directory` if it passes; returns the manifest (updated if kept).
    Nodes whose name contains one of `options.keep_fp32` (e.g. "audio_encoder") stay in fp32."""
    src = directory / manifest.graphs["frame"].file
    pre, dst = directory / "frame.pre.onnx", directory / "frame_int8.onnx"
    feeds = frame_feeds(directory, manifest, samples)
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    nodes = onnx.load(str(pre)).graph.node
    excluded = [n.name for n in nodes if any(k in n.name for k in options.keep_fp32)]
    quantize_static(
        str(pre),
        str(dst),
        _Feeds(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded,
        op_types_to_quantize=list(options.op_types) or None,
        calibrate_method=CALIBRATION[options.calibration],
        extra_options={"CalibPercentile": options.percentile},
    )
    pre.unlink()
    fp32, int8 = open_session(src), open_session(dst)
    batch: Feeds = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
    quality = psnr_db(fp32.run(None, batch)[0], int8.run(None, batch)[0])
    ms_fp32, ms_int8 = per_frame_ms(fp32, feeds[0]), per_frame_ms(int8, feeds[0])
    speedup = ms_fp32 / ms_int8
    log(
        f"int8 frame graph: {quality:.1f} dB PSNR vs fp32 ({samples.source}),"
        f" {ms_fp32:.2f} ms -> {ms_int8:.2f} ms per frame at batch 1 (speed-up x{speedup:.2f})"
    )
    if quality < min_psnr_db:
        log(f"int8 frame graph dropped: {quality:.1f} dB < {min_psnr_db} dB")
        dst.unlink()
        return manifest
    info = dataclasses.replace(manifest.graphs["frame"], file=dst.name, sha256=sha256_file(dst))
    graphs: dict[str, GraphInfo] = {**manifest.graphs, "frame_int8": info}
    return dataclasses.replace(
        manifest, graphs=graphs, int8_psnr_db=round(quality, 2), int8_speedup=round(speedup, 3)
    )


def split_inputs(corpus: Path, split: str, n: int, lookahead_ms: float, seed: int = 0) -> SampleInputs:
    """`n` (reference, frame, mel window) triples drawn from one split of a prepared dataset:
    a seeded random reference frame and target frame of a seeded random clip."""
    data = PreparedData(corpus, split)
    rng = np.random.default_rng(seed)
    images, frames, mels = [], [], []
    for _ in range(n):
        clip = data.clips[int(rng.integers(len(data.clips)))]
        ref, t = (int(i) for i in rng.integers(clip.n_frames, size=2))
        images.append(to_chw(clip.frames[ref]))
        frames.append(to_chw(clip.frames[t]))
        mels.append(generator_mel(clip, t, lookahead_ms, data.mel_cfg))
    return SampleInputs(
        images=np.stack(images),
        frames=np.stack(frames),
        mels=np.stack(mels),
        source=f"corpus {corpus} {split}",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.export.quantize", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directory", type=Path, help="an export directory (manifest.json, frame.onnx)")
    parser.add_argument("--corpus", type=Path, required=True, help="a prepared dataset (train split used)")
    parser.add_argument("--samples", type=int, default=32, help="calibration items")
    parser.add_argument("--keep-fp32", default="", help="comma-separated node-name parts left in fp32")
    parser.add_argument("--calibration", choices=sorted(CALIBRATION), default="minmax")
    parser.add_argument("--percentile", type=float, default=99.999, help="with --calibration percentile")
    parser.add_argument("--op-types", default="", help="operator types quantised (default all)")
    args = parser.parse_args(argv)
    manifest = read_manifest(args.directory)
    samples = split_inputs(args.corpus, "train", args.samples, manifest.lookahead_ms)
    options = QuantOptions(
        calibration=args.calibration,
        percentile=args.percentile,
        op_types=tuple(k for k in args.op_types.split(",") if k),
        keep_fp32=tuple(k for k in args.keep_fp32.split(",") if k),
    )
    manifest = quantize_frame(args.directory, manifest, samples, options=options)
    write_manifest(args.directory, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
