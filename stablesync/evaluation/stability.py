"""The paper's stability claim, measured: how much a sync expert's cosine moves on ground truth.

For every clip of a split, the cosine of each 5-frame window with its own audio window
(ground-truth pairs only, offset 0) along the clip; per clip its standard deviation and mean
absolute step-to-step change, averaged over clips. Also each expert's offset accuracy on the
ground truth (the shift-invariance side of the claim). And the std of a training run's sync
term (from its log.csv), the other stability figure of the ablation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stablesync.evaluation.sync import fluctuation, sync_scores
from stablesync.models.syncnet import AVSyncNet
from stablesync.train.data import PreparedData, to_chw
from stablesync.train.logs import series


def cosine_fluctuation(net: AVSyncNet, data: PreparedData, max_clips: int = 0) -> dict[str, object]:
    clips = data.clips[:max_clips] if max_clips else data.clips
    rows, offsets, traces = [], [], []
    for clip in clips:
        frames = torch.from_numpy(to_chw(np.asarray(clip.frames)))
        s = sync_scores(net, frames, clip.mel, clip.fps, data.mel_cfg)
        rows.append(fluctuation(s.cosines))
        offsets.append(s.offset)
        traces.append(s.cosines.tolist())
    out: dict[str, object] = {k: float(np.nanmean([r[k] for r in rows])) for k in rows[0]}
    out["offset_accuracy"] = float(np.mean(np.abs(np.array(offsets)) <= 1))
    out["clips"] = len(clips)
    out["trace_first_clip"] = traces[0]
    return out


def sync_term_stats(log_csv: Path, skip_fraction: float = 0.1) -> dict[str, float]:
    """Std (and std / mean) of the logged training sync term, after the first `skip_fraction` of steps."""
    data = series(log_csv)
    if ("train", "sync") not in data:
        return {}
    _steps, values = data[("train", "sync")]
    start = int(len(values) * skip_fraction)
    v = np.array(values[start:])
    out = {"sync_std": float(np.std(v)), "sync_mean": float(np.mean(v))}
    out["sync_cv"] = out["sync_std"] / max(abs(out["sync_mean"]), 1e-9)
    if ("train", "sim_gap") in data:
        out["sim_gap_std"] = float(np.std(data[("train", "sim_gap")][1][start:]))
    if ("train", "sim_fake") in data:
        sf = np.array(data[("train", "sim_fake")][1][start:])
        out["sim_fake_std"] = float(np.std(sf))
        out["sim_fake_step_change"] = float(np.mean(np.abs(np.diff(sf)))) if len(sf) > 1 else float("nan")
    return out
