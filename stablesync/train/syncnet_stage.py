"""Stage 1: AVSyncNet, binary cross-entropy on the cosine of the two embeddings.

Positives pair 5 frames with their own mel window; negatives with the window of another,
non-overlapping 5-frame window of the same clip (so identity and voice give no clue).
`kind = "wav2lip"` trains the ablation's baseline instead: the same architecture family cut
to Wav2Lip's SyncNet size (one residual block per stage, no squeeze-excitation, narrower).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stablesync import checkpoint
from stablesync.errors import UserError
from stablesync.losses import sync_bce_loss
from stablesync.models import get_preset
from stablesync.models.audio_encoder import AudioEncoder
from stablesync.models.config import AudioEncoderConfig, AVSyncNetConfig, VisualEncoderConfig
from stablesync.models.syncnet import AVSyncNet
from stablesync.train.config import SyncNetStage
from stablesync.train.data import PreparedData, SyncBatch, fixed_batches, sample_sync_batch
from stablesync.train.distributed import DistEnv, wrap


def wav2lip_sized(cfg: AVSyncNetConfig) -> AVSyncNetConfig:
    """A small SyncNet of Wav2Lip's size for the stability comparison."""
    audio = AudioEncoderConfig(
        n_mels=cfg.audio.n_mels,
        window_frames=cfg.audio.window_frames,
        channels=(32, 64, 128, 256),
        blocks=(1, 1, 1, 1),
        embed_dim=cfg.audio.embed_dim,
        se_reduction=0,
    )
    visual = dataclasses.replace(cfg.visual, channels=(32, 64, 128, 256, 256), blocks=(1, 1, 1, 1, 1))
    return AVSyncNetConfig(audio=audio, visual=visual)


def syncnet_config(cfg: SyncNetStage, size: int) -> AVSyncNetConfig:
    net = get_preset(cfg.preset).syncnet
    net = AVSyncNetConfig(
        audio=net.audio, visual=VisualEncoderConfig(**{**net.visual.__dict__, "image_size": size})
    )
    return wav2lip_sized(net) if cfg.kind == "wav2lip" else net


def adopt_audio_encoder(net: AVSyncNet, path: str) -> None:
    """Copies the audio encoder of a lipsync or AVSyncNet checkpoint into `net`, frozen."""
    source, _ = checkpoint.load(path)
    encoder = getattr(source, "audio_encoder", None)
    if not isinstance(encoder, AudioEncoder):
        raise UserError(f"{path}: holds no audio encoder (expected a lipsync or AVSyncNet checkpoint)")
    if encoder.cfg != net.cfg.audio:
        raise UserError(f"{path}: its audio encoder differs from this AVSyncNet's (another preset?)")
    net.audio_encoder.load_state_dict(encoder.state_dict())
    for p in net.audio_encoder.parameters():
        p.requires_grad_(False)


class SyncNetTask:
    def __init__(self, cfg: SyncNetStage, env: DistEnv) -> None:
        self.name = f"syncnet[{cfg.kind}]"
        self.validation_id = ""
        self.cfg, self.env = cfg, env
        self.train_data = PreparedData(cfg.data, "train")
        val_data = PreparedData(cfg.data, "val")
        self.net_cfg = syncnet_config(cfg, self.train_data.size)
        self.net = AVSyncNet(self.net_cfg).to(env.device)
        if cfg.audio_encoder:
            adopt_audio_encoder(self.net, cfg.audio_encoder)
        self.ddp = wrap(self.net, env)
        s = cfg.schedule
        trained = [p for p in self.net.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trained, lr=s.lr, weight_decay=s.weight_decay)
        for g in self.opt.param_groups:
            g["base_lr"] = s.lr
        n = self.net_cfg.visual.n_frames
        self.val_batches: list[SyncBatch] = fixed_batches(
            s.val_batches,
            s.seed + 7919,
            lambda rng: sample_sync_batch(val_data, rng, s.batch_size, n, 0.5),
        )

    def state_modules(self) -> dict[str, nn.Module]:
        return {"syncnet": self.net}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"syncnet": self.opt}

    def _tensors(self, b: SyncBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dev = self.env.device
        return (
            torch.from_numpy(b.frames).to(dev),
            torch.from_numpy(b.mels).to(dev),
            torch.from_numpy(b.labels).to(dev),
        )

    def _train_mode(self) -> None:
        self.net.train()
        if self.cfg.audio_encoder:  # an adopted encoder keeps its batch-norm statistics too
            self.net.audio_encoder.eval()

    def train_step(self, rng: np.random.Generator, step: int) -> dict[str, float]:
        s = self.cfg.schedule
        batch = sample_sync_batch(
            self.train_data, rng, s.batch_size, self.net_cfg.visual.n_frames, self.cfg.negative_fraction
        )
        frames, mels, labels = self._tensors(batch)
        self._train_mode()
        sim = self.ddp(frames, mels)
        loss = sync_bce_loss(sim, labels)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), s.grad_clip)
        self.opt.step()
        acc = ((sim.detach() > 0).float() == labels).float().mean()
        return {"bce": float(loss.detach()), "accuracy": float(acc)}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.net.eval()
        bce, acc, pos, neg = [], [], [], []
        for b in self.val_batches:
            frames, mels, labels = self._tensors(b)
            sim = self.net(frames, mels)
            bce.append(float(sync_bce_loss(sim, labels)))
            acc.append(float(((sim > 0).float() == labels).float().mean()))
            pos += sim[labels > 0.5].tolist()
            neg += sim[labels < 0.5].tolist()
        self._train_mode()
        out = {
            "bce": float(np.mean(bce)),
            "accuracy": float(np.mean(acc)),
            "cos_positive": float(np.mean(pos)) if pos else 0.0,
            "cos_negative": float(np.mean(neg)) if neg else 0.0,
        }
        out["score"] = out["bce"]
        return out

    def save_checkpoint(self, path: Path) -> None:
        checkpoint.save(path, self.net, self.net_cfg, extra={"stage": "syncnet", "kind": self.cfg.kind})
