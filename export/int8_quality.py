"""Is the int8 frame graph as good as the fp32 one? Generated crops of held-out clips, compared.

`python -m stablesync.export.int8_quality DIR --corpus PREPARED [--splits test,val] [--out JSON] [--record]
[--real-faces "one line"]`

Every frame of every clip in the splits is generated twice by the "ort-cpu" engine, from the
same reference (a seeded random frame of the clip, as `stablesync eval` draws it) and the
clip's own audio: once with frame.onnx, once with frame_int8.onnx. Measured: PSNR of the int8
crops against the fp32 crops; the mouth opening (inner-lip gap / eye distance, mediapipe face
mesh on each crop) of both, their Pearson r, the ratio of their standard deviations (how much
the mouth moves), and each one's r with the ground-truth crops' opening. It passes with
>= 35 dB, r >= 0.95 and a ratio >= 0.95. `--record` writes the verdict into manifest.json
as `int8_check`, which the CPU engine reads before it runs the int8 graph. No torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.errors import UserError
from stablesync.export.backends.ort import OrtEngine
from stablesync.export.manifest import MIN_INT8_PSNR_DB, Int8Check, Manifest, read_manifest, write_manifest
from stablesync.export.quantize import psnr_db
from stablesync.train.data import Clip, PreparedData, generator_mel, to_chw

MIN_MOUTH_OPENING_R = 0.95  # int8 vs fp32 opening, below which the int8 graph is not used
MIN_OPENING_STD_RATIO = 0.95  # int8's mouth movement over fp32's, below which it is not used
BATCH = 16


def generate_clip(engine: OrtEngine, clip: Clip, reference: int, manifest: Manifest) -> NDArray[np.uint8]:
    """(T, S, S, 3) uint8: the clip re-rendered from its frame `reference` and its own audio."""
    feats = engine.encode_reference(to_chw(clip.frames[reference])[None])
    out = []
    for lo in range(0, clip.n_frames, BATCH):
        hi = min(lo + BATCH, clip.n_frames)
        mels = np.stack([generator_mel(clip, t, manifest.lookahead_ms, manifest.mel) for t in range(lo, hi)])
        batch_feats = tuple(np.repeat(f, hi - lo, axis=0) for f in feats)
        gen = engine.generate(batch_feats, to_chw(clip.frames[lo:hi]), mels)
        out.append((np.clip(gen, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1))
    return np.concatenate(out)


def compare(directory: Path, corpus: Path, splits: list[str], seed: int = 0) -> dict[str, Any]:
    """The measures above, per clip and over all frames."""
    from stablesync.evaluation.mouth import CropLandmarks, correlation, openings

    manifest = read_manifest(directory)
    fp32 = OrtEngine(directory, manifest, prefer_int8=False)
    int8 = OrtEngine(directory, dataclasses.replace(manifest, int8_check=None, int8_psnr_db=99.0))
    if int8.frame_graph != "frame_int8":
        raise UserError(
            f"{directory}: the export lists no frame_int8 graph"
            " (make one: python -m stablesync.export.quantize)"
        )
    landmarks = CropLandmarks()
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    open_fp32: list[NDArray[np.float64]] = []
    open_int8: list[NDArray[np.float64]] = []
    open_gt: list[NDArray[np.float64]] = []
    all_fp32: list[NDArray[np.uint8]] = []
    all_int8: list[NDArray[np.uint8]] = []
    for split in splits:
        for clip in PreparedData(corpus, split).clips:
            reference = int(rng.integers(clip.n_frames))
            a = generate_clip(fp32, clip, reference, manifest)
            b = generate_clip(int8, clip, reference, manifest)
            oa, ob = openings(landmarks(a)), openings(landmarks(b))
            og = openings(landmarks(np.asarray(clip.frames)))
            rows.append(
                {
                    "clip": clip.clip_id,
                    "split": split,
                    "frames": clip.n_frames,
                    "psnr_db": psnr_db(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0),
                    "mouth_opening_r": correlation(oa, ob),
                    "opening_std_ratio": float(np.nanstd(ob) / np.nanstd(oa)),
                    "fp32_opening_r_truth": correlation(oa, og),
                    "int8_opening_r_truth": correlation(ob, og),
                }
            )
            for store, value in ((open_fp32, oa), (open_int8, ob), (open_gt, og)):
                store.append(value)
            all_fp32.append(a)
            all_int8.append(b)
    landmarks.close()
    oa, ob, og = np.concatenate(open_fp32), np.concatenate(open_int8), np.concatenate(open_gt)
    a, b = np.concatenate(all_fp32), np.concatenate(all_int8)
    return {
        "inputs": f"corpus {corpus} split {','.join(splits)}",
        "frames": len(a),
        "psnr_db": psnr_db(a.astype(np.float32) / 255.0, b.astype(np.float32) / 255.0),
        "max_abs_diff_u8": int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()),
        "mouth_opening_r": correlation(oa, ob),
        "mouth_opening_mean_abs_diff": float(np.nanmean(np.abs(oa - ob))),
        "opening_std_ratio": float(np.nanstd(ob) / np.nanstd(oa)),  # int8 / fp32: < 1 moves less
        "fp32_opening_r_truth": correlation(oa, og),
        "int8_opening_r_truth": correlation(ob, og),
        "clips": rows,
    }


def verdict(report: dict[str, Any], real_faces: str) -> Int8Check:
    psnr, r = float(report["psnr_db"]), float(report["mouth_opening_r"])
    ratio = float(report["opening_std_ratio"])
    return Int8Check(
        passed=psnr >= MIN_INT8_PSNR_DB and r >= MIN_MOUTH_OPENING_R and ratio >= MIN_OPENING_STD_RATIO,
        psnr_db=round(psnr, 2),
        mouth_opening_r=round(r, 4),
        opening_std_ratio=round(ratio, 4),
        frames=int(report["frames"]),
        inputs=str(report["inputs"]),
        real_faces=real_faces,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stablesync.export.int8_quality", description=__doc__.splitlines()[0]
    )
    parser.add_argument("directory", type=Path, help="an export directory listing frame_int8")
    parser.add_argument("--corpus", type=Path, required=True, help="a prepared dataset")
    parser.add_argument("--splits", default="test,val", help="comma-separated splits (default test,val)")
    parser.add_argument("--out", type=Path, help="the full report as JSON")
    parser.add_argument("--record", action="store_true", help="write the verdict into manifest.json")
    parser.add_argument("--real-faces", default="", help="the real-face comparison, recorded as given")
    args = parser.parse_args(argv)
    report = compare(args.directory, args.corpus, args.splits.split(","))
    check = verdict(report, args.real_faces)
    report["verdict"] = dataclasses.asdict(check)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    if args.record:
        manifest = dataclasses.replace(read_manifest(args.directory), int8_check=check)
        write_manifest(args.directory, manifest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
