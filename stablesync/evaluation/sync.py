"""Sync metrics with our AVSyncNet, following Wav2Lip's LSE protocol (syncnet_python).

For a video of T frames: the visual embedding of every 5-frame window i, the audio embedding
of the window that AVSyncNet pairs with frame i + o for every offset o in -15..+15, and the
Euclidean distance between the (unit-length) embeddings. Averaging over i gives one mean
distance per offset; LSE-D is its minimum, LSE-C = median - minimum, and the offset found is
the argmin (0 = in sync). Our embeddings have unit length, so distances lie in [0, 2] and the
absolute values are not comparable with SyncNet's published LSE numbers; ratios to the ground
truth are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from stablesync.audio import MelConfig, mel_window, mel_window_start
from stablesync.models.syncnet import AVSyncNet
from stablesync.train.data import SYNC_LOOKAHEAD_MS, WINDOW_FRAMES

MAX_OFFSET = 15


@dataclass(frozen=True)
class SyncScores:
    lse_d: float
    lse_c: float
    offset: int  # frames; 0 = in sync
    mean_distance: NDArray[np.float64]  # (2*MAX_OFFSET+1,) per offset -15..15
    cosines: NDArray[np.float64]  # (T-4,) cosine of each window with its own audio (offset 0)


@torch.no_grad()
def visual_embeddings(net: AVSyncNet, frames: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """(T, 3, S, S) in [0, 1] -> (T-n+1, D) unit embeddings of every n-frame window."""
    n = net.cfg.visual.n_frames
    windows = frames.unfold(0, n, 1).permute(0, 4, 1, 2, 3)  # (T-n+1, n, 3, S, S)
    return torch.cat([net.embed_visual(windows[i : i + batch]) for i in range(0, len(windows), batch)])


@torch.no_grad()
def audio_embeddings(
    net: AVSyncNet, mel: NDArray[np.float32], starts: list[int], fps: float, cfg: MelConfig, batch: int = 128
) -> torch.Tensor:
    """Unit audio embeddings of AVSyncNet's windows for the frame indices `starts` (any integers)."""
    wins = np.stack(
        [
            mel_window(
                mel, mel_window_start(i, fps, SYNC_LOOKAHEAD_MS, WINDOW_FRAMES, cfg), WINDOW_FRAMES, cfg
            )
            for i in starts
        ]
    )[:, None]
    x = torch.from_numpy(wins)
    return torch.cat([net.embed_audio(x[i : i + batch]) for i in range(0, len(x), batch)])


@torch.no_grad()
def sync_scores(
    net: AVSyncNet, frames: torch.Tensor, mel: NDArray[np.float32], fps: float, cfg: MelConfig
) -> SyncScores:
    """LSE-D/C and the offset of one video (frames (T, 3, S, S) in [0, 1]) against its audio."""
    net.eval()
    v = visual_embeddings(net, frames)  # (W, D)
    w = len(v)
    starts = list(range(-MAX_OFFSET, w + MAX_OFFSET))
    a = audio_embeddings(net, mel, starts, fps, cfg)  # (W + 2*MAX, D); a[k] is frame k - MAX
    dists = torch.stack([(v - a[o : o + w]).norm(dim=1) for o in range(2 * MAX_OFFSET + 1)], dim=1)  # (W, O)
    mean = dists.mean(0).double().numpy()
    cos = (v * a[MAX_OFFSET : MAX_OFFSET + w]).sum(1).double().numpy()
    minimum = float(mean.min())
    return SyncScores(
        lse_d=minimum,
        lse_c=float(np.median(mean) - minimum),
        offset=int(np.argmin(mean)) - MAX_OFFSET,
        mean_distance=mean,
        cosines=cos,
    )


def fluctuation(cosines: NDArray[np.float64]) -> dict[str, float]:
    """How much the ground-truth cosine moves along a clip: its std and mean |step-to-step change|."""
    if len(cosines) < 2:
        return {"cos_std": float("nan"), "cos_mean_abs_diff": float("nan"), "cos_mean": float("nan")}
    return {
        "cos_mean": float(np.mean(cosines)),
        "cos_std": float(np.std(cosines)),
        "cos_mean_abs_diff": float(np.mean(np.abs(np.diff(cosines)))),
    }
