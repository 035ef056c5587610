"""The evaluation protocol over one split of a prepared dataset.

Per clip (reference = a seeded random frame of the same clip, as in training):
1. generate every frame from the clip's audio and pose (the target frame, masked inside);
2. sync: LSE-D/C and the offset found by AVSyncNet, for generated and ground-truth videos;
3. image: PSNR and SSIM of the generated crop against the ground-truth crop, and
   `psnr_lower`, the PSNR of the crop's lower half alone (the half the generator cannot see:
   with `keep_visible` the upper half is the input's, so `psnr` is about 3 dB above it);
4. mouth: mediapipe landmarks of both; LMD over the lip points; the correlation of the
   mouth opening (inner-lip gap / eye distance) of generated vs ground-truth frames;
5. lip leak: the clip generated again with its most-open frame and with its most-closed frame
   as reference. lip_leak = mean over frames of (opening with the open reference - opening
   with the closed reference) / (opening of the open reference - opening of the closed one):
   0 = the mouth ignores the reference's mouth, 1 = it copies it. And the silent case: the
   most-open reference with silent audio for the whole clip; `silent_mouth_open` is the mean
   opening then, `silent_closed_fraction` the fraction of frames whose opening is below the
   clip's closed threshold (10th percentile of the ground truth's opening + 20% of its
   10th-90th percentile range). The ground truth's row reports the 10th percentile itself.
Clip figures are averaged over clips (NaN-aware); offset_accuracy is the fraction of clips
whose offset is within +-1 frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from stablesync.audio import MelConfig
from stablesync.evaluation import images, mouth
from stablesync.evaluation.sync import fluctuation, sync_scores
from stablesync.models.lipsync import LipSyncModel
from stablesync.models.syncnet import AVSyncNet
from stablesync.train.data import Clip, PreparedData, generator_mel, to_chw

CLOSED_MARGIN = 0.2
# always present in a report (null where a clip gave no value, e.g. no face found)
REPORT_KEYS = (
    "lse_c",
    "lse_d",
    "offset_accuracy",
    "psnr",
    "psnr_lower",
    "ssim",
    "lmd",
    "mouth_open_corr",
    "lip_leak",
)


@dataclass(frozen=True)
class EvalOptions:
    split: str = "test"
    max_clips: int = 0  # 0 = all
    seed: int = 0
    batch: int = 32
    use_silent: bool = True  # False for models trained without G_S (ablation a)
    lip_leak: bool = True
    lookahead_ms: float | None = None  # the audio window's end after each frame; None: the model's


@torch.no_grad()
def generate_clip(
    model: LipSyncModel,
    clip: Clip,
    reference: NDArray[np.uint8],
    cfg: MelConfig,
    use_silent: bool,
    batch: int,
    silent_audio: bool = False,
    lookahead_ms: float | None = None,
) -> NDArray[np.uint8]:
    """The clip re-rendered from `reference` (S, S, 3) and the clip's audio (or silence); each
    frame's mel window ends `lookahead_ms` after it (default: the model's training look-ahead)."""
    ahead_ms = model.cfg.lookahead_ms if lookahead_ms is None else lookahead_ms
    ref = torch.from_numpy(to_chw(reference))[None]
    feats = model.encode_reference(ref) if use_silent else model.talker.encode_identity(ref)
    out = []
    for lo in range(0, clip.n_frames, batch):
        idx = range(lo, min(lo + batch, clip.n_frames))
        frames = torch.from_numpy(to_chw(clip.frames[lo : idx[-1] + 1]))
        if silent_audio:
            mels = torch.full((len(idx), 1, cfg.n_mels, 16), cfg.silence_value)
        else:
            mels = torch.from_numpy(np.stack([generator_mel(clip, t, ahead_ms, cfg) for t in idx]))
        f = [x.expand(len(idx), -1, -1, -1) for x in feats]
        gen = model.generate(f, frames, mels)
        out.append((gen.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def _nanmean(values: list[float]) -> float | None:
    arr = np.array(values, dtype=np.float64)
    if arr.size == 0 or np.isnan(arr).all():
        return None
    return float(np.nanmean(arr))


def evaluate(
    model: LipSyncModel,
    syncnet: AVSyncNet,
    data: PreparedData,
    opts: EvalOptions,
    progress: Any = None,
) -> dict[str, Any]:
    model.eval()
    syncnet.eval()
    rng = np.random.default_rng(opts.seed)
    clips = data.clips[: opts.max_clips] if opts.max_clips else data.clips
    tracker = mouth.CropLandmarks()
    gen_rows: list[dict[str, float]] = []
    gt_rows: list[dict[str, float]] = []
    try:
        for k, clip in enumerate(clips):
            ref_index = int(rng.integers(clip.n_frames))
            gt = np.asarray(clip.frames)
            ref, ahead = gt[ref_index], opts.lookahead_ms
            gen = generate_clip(model, clip, ref, data.mel_cfg, opts.use_silent, opts.batch, False, ahead)
            g_row, t_row = _clip_metrics(model, syncnet, data, clip, gt, gen, tracker, opts)
            gen_rows.append(g_row)
            gt_rows.append(t_row)
            if progress is not None:
                progress(k + 1, len(clips), clip.clip_id)
    finally:
        tracker.close()
    generated = _summary(gen_rows)
    ground_truth = _summary(gt_rows)
    for key in REPORT_KEYS:
        generated.setdefault(key, None)
        ground_truth.setdefault(key, None)  # psnr(_lower), lip_leak: not for the ground truth
    report: dict[str, Any] = {**generated, "ground_truth": ground_truth}
    report["clips"] = len(clips)
    report["frames"] = int(sum(c.n_frames for c in clips))
    report["per_clip"] = [
        {"clip": c.clip_id, **{k: None if math.isnan(v) else v for k, v in g.items()}}
        for c, g in zip(clips, gen_rows, strict=True)
    ]
    return report


def _summary(rows: list[dict[str, float]]) -> dict[str, Any]:
    keys = sorted({k for r in rows for k in r})
    out: dict[str, Any] = {k: _nanmean([r.get(k, math.nan) for r in rows]) for k in keys}
    if "offset" in keys:
        offsets = np.array([r["offset"] for r in rows])
        out["offset_accuracy"] = float(np.mean(np.abs(offsets) <= 1))
        out.pop("offset")
    return out


def _clip_metrics(
    model: LipSyncModel,
    syncnet: AVSyncNet,
    data: PreparedData,
    clip: Clip,
    gt: NDArray[np.uint8],
    gen: NDArray[np.uint8],
    tracker: mouth.CropLandmarks,
    opts: EvalOptions,
) -> tuple[dict[str, float], dict[str, float]]:
    cfg = data.mel_cfg
    g_sync = sync_scores(syncnet, torch.from_numpy(to_chw(gen)), clip.mel, clip.fps, cfg)
    t_sync = sync_scores(syncnet, torch.from_numpy(to_chw(gt)), clip.mel, clip.fps, cfg)
    g_lm, t_lm = tracker(gen), tracker(gt)
    g_open, t_open = mouth.openings(g_lm), mouth.openings(t_lm)
    g_row = {
        "lse_c": g_sync.lse_c,
        "lse_d": g_sync.lse_d,
        "offset": float(g_sync.offset),
        "psnr": images.psnr(gen, gt),
        "psnr_lower": images.psnr(gen[:, gen.shape[1] // 2 :], gt[:, gt.shape[1] // 2 :]),
        "ssim": images.ssim(gen, gt),
        "lmd": mouth.lmd(g_lm, t_lm, data.size),
        "mouth_open_corr": mouth.correlation(g_open, t_open),
        "landmark_rate": float(np.mean(~np.isnan(g_open))),
        "cos_mean": float(np.mean(g_sync.cosines)),
    }
    truth = np.asarray(clip.meta.get("mouth_open", []), dtype=np.float64)
    t_row = {
        "lse_c": t_sync.lse_c,
        "lse_d": t_sync.lse_d,
        "offset": float(t_sync.offset),
        "ssim": 1.0,
        "lmd": 0.0,
        "mouth_open_corr": mouth.correlation(t_open, truth) if len(truth) == len(t_open) else math.nan,
        "landmark_rate": float(np.mean(~np.isnan(t_open))),
        **fluctuation(t_sync.cosines),
    }
    known = t_open[~np.isnan(t_open)]
    if opts.lip_leak and len(known) >= 3:
        p10, p90 = np.percentile(known, [10, 90])
        threshold = p10 + CLOSED_MARGIN * (p90 - p10)
        i_open, i_closed = int(np.nanargmax(t_open)), int(np.nanargmin(t_open))
        use_silent = opts.use_silent
        ahead = opts.lookahead_ms
        with_open = generate_clip(model, clip, gt[i_open], cfg, use_silent, opts.batch, False, ahead)
        with_closed = generate_clip(model, clip, gt[i_closed], cfg, use_silent, opts.batch, False, ahead)
        silent = generate_clip(model, clip, gt[i_open], cfg, use_silent, opts.batch, silent_audio=True)
        o_open, o_closed = mouth.openings(tracker(with_open)), mouth.openings(tracker(with_closed))
        o_silent = mouth.openings(tracker(silent))
        ref_gap = t_open[i_open] - t_open[i_closed]
        if ref_gap > 1e-3:
            g_row["lip_leak"] = float(np.nanmean(o_open - o_closed) / ref_gap)
        g_row["silent_mouth_open"] = float(np.nanmean(o_silent))
        g_row["silent_closed_fraction"] = float(np.mean(o_silent[~np.isnan(o_silent)] < threshold))
        t_row["silent_mouth_open"] = float(p10)
    return g_row, t_row
