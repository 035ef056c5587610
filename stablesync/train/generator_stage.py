"""Stages 2 and 3: the silent-lip generator G_S and the talking-face generator G_L.

Both train one U-Net of the `LipSyncModel` against a PatchGAN discriminator, with the frozen
AVSyncNet audio encoder inside the model:

    L = w.gan L_GAN + w.pixel L1 + w.perceptual [(1 - SSIM) + w.feature_matching L_FM]
        (+ w.sync L_sync + w.triplet L_at for G_L only)

G_S (stage "silent") never sees a sync loss. G_L (stage "generator") is fed the identity
reference through the frozen G_S, and its sync term is computed by the trained AVSyncNet on
`sync_frames` consecutive generated frames: L_ss(x, y, d) with x = sim(generated, audio),
y = sim(ground truth, audio), d = sim(reference repeated, audio), or the plain -log sim for
the ablation. The adaptive triplet loss works on the lower half of the faces (the mouth).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from stablesync import checkpoint
from stablesync.errors import UserError
from stablesync.losses import (
    adaptive_triplet_loss,
    feature_matching_loss,
    gan_loss,
    perceptual_standin_loss,
    pixel_loss,
    plain_sync_loss,
    ssim,
    stabilized_sync_loss,
)
from stablesync.models import get_preset
from stablesync.models.blocks import ResBlock
from stablesync.models.config import DiscriminatorConfig, LipSyncConfig
from stablesync.models.discriminator import PatchDiscriminator
from stablesync.models.generator import FiLM, UNetGenerator
from stablesync.models.lipsync import LipSyncModel
from stablesync.models.syncnet import AVSyncNet, lower_half
from stablesync.train import fake_quant
from stablesync.train.config import GeneratorStage
from stablesync.train.data import (
    GeneratorBatch,
    PreparedData,
    SilenceDraw,
    fixed_batches,
    sample_generator_batch,
)
from stablesync.train.distributed import DistEnv, wrap


class _Generate(nn.Module):
    """One U-Net as a single forward (identity encoding included), so DDP sees every weight."""

    def __init__(self, net: UNetGenerator) -> None:
        super().__init__()
        self.net = net

    def forward(self, identity: torch.Tensor, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(self.net.encode_identity(identity), frames, audio)
        return out


def _freeze(module: nn.Module) -> None:
    for p in module.parameters():
        p.requires_grad_(False)
    module.eval()


def lipsync_config(preset: str, size: int) -> tuple[LipSyncConfig, DiscriminatorConfig]:
    p = get_preset(preset)
    gen = dataclasses.replace(p.lipsync.generator, image_size=size)
    return dataclasses.replace(p.lipsync, generator=gen), dataclasses.replace(
        p.discriminator, image_size=size
    )


def load_syncnet(path: str, cfg: LipSyncConfig) -> AVSyncNet:
    net, net_cfg = checkpoint.load(path, expect_arch="avsyncnet")
    if net_cfg.audio != cfg.audio:
        raise UserError(
            f"{path}: AVSyncNet audio encoder differs from the preset's (train it with the same preset)"
        )
    assert isinstance(net, AVSyncNet)
    return net


def _load_lipsync(path: str) -> LipSyncModel:
    model, _ = checkpoint.load(path, expect_arch="lipsync")
    assert isinstance(model, LipSyncModel)
    return model


def _copy_unet(source: UNetGenerator, target: UNetGenerator, path: str) -> None:
    try:
        target.load_state_dict(source.state_dict())
    except RuntimeError:
        raise UserError(f"{path}: a U-Net of another size than this preset's") from None


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    """Equal up to fp16 rounding (a shipped checkpoint stores its weights in fp16)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.allclose(sa[k].float(), sb[k].float(), rtol=2e-3, atol=1e-5) for k in sa
    )


def _fake_quantize_frame_graph(
    net: UNetGenerator, audio_encoder: nn.Module, keep_fp32: tuple[str, ...] = ()
) -> None:
    """Int8 rounding where the int8 frame graph has it: G_L's weights and activations (not its
    identity encoder, which runs in fp32 in reference.onnx), the outputs of its residual blocks,
    FiLM layers and head, and the frozen audio encoder (ranges observed in eval mode too).
    `keep_fp32` ("head"): parts the exported graph keeps in fp32, left as they are."""
    parts: tuple[nn.Module, ...] = (
        net.pose_encoder,
        net.bottleneck,
        net.bottleneck_film,
        net.decoder,
        net.audio_to_map,
    )
    if "head" not in keep_fp32:
        parts += (net.head,)
    for part in parts:
        fake_quant.attach(part)
    for m in (*net.pose_encoder.modules(), *net.bottleneck.modules(), *net.decoder.modules()):
        if isinstance(m, (FiLM, ResBlock)):
            fake_quant.quantize_outputs(m)
    fake_quant.quantize_outputs(net.bottleneck_film)
    if "head" not in keep_fp32:
        fake_quant.quantize_outputs(net.head)
    fake_quant.attach(audio_encoder, observe=True)
    for m in audio_encoder.modules():
        if isinstance(m, ResBlock):
            fake_quant.quantize_outputs(m, observe=True)


class GeneratorTask:
    def __init__(self, cfg: GeneratorStage, stage: Literal["silent", "generator"], env: DistEnv) -> None:
        self.cfg, self.stage, self.env = cfg, stage, env
        self.name = "G_S" if stage == "silent" else "G_L"
        self.train_data = PreparedData(cfg.data, "train")
        val_data = PreparedData(cfg.data, "val")
        self.model_cfg, disc_cfg = lipsync_config(cfg.preset, self.train_data.size)
        dev = env.device
        self.syncnet = load_syncnet(cfg.syncnet, self.model_cfg).to(dev)
        _freeze(self.syncnet)
        if self.syncnet.cfg.visual.n_frames != cfg.sync_frames:
            raise UserError(
                f"sync_frames: {cfg.sync_frames}, but the AVSyncNet reads {self.syncnet.cfg.visual.n_frames}"
            )
        self.model = LipSyncModel(self.model_cfg).to(dev)
        self.model.load_audio_encoder(self.syncnet)
        if stage == "generator":
            if cfg.silent:
                g_s = _load_lipsync(cfg.silent).silent
                _copy_unet(g_s, self.model.silent, cfg.silent)
                if cfg.init_from_silent and not cfg.init:
                    _copy_unet(g_s, self.model.talker, cfg.silent)
            _freeze(self.model.silent)
            self.net = self.model.talker
        else:
            self.net = self.model.silent
        if cfg.init:
            init = _load_lipsync(cfg.init)
            if not _same_weights(init.audio_encoder, self.model.audio_encoder):
                raise UserError(f"{cfg.init}: its audio encoder is not the one of {cfg.syncnet}")
            _copy_unet(init.talker if stage == "generator" else init.silent, self.net, cfg.init)
        if cfg.fake_quant:
            _fake_quantize_frame_graph(self.net, self.model.audio_encoder, cfg.fake_quant_fp32)
        self.gen_raw = _Generate(self.net)
        self.gen = wrap(self.gen_raw, env)
        self.disc = PatchDiscriminator(disc_cfg).to(dev)
        self.disc_ddp = wrap(self.disc, env)
        s = cfg.schedule
        self.opt_g = torch.optim.Adam(self.net.parameters(), lr=s.lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.999))
        for opt, lr in ((self.opt_g, s.lr), (self.opt_d, cfg.disc_lr)):
            for g in opt.param_groups:
                g["base_lr"] = lr
        self.n_frames = cfg.sync_frames if stage == "generator" else 1
        self.silence: dict[str, SilenceDraw | None] = {"train": None, "val": None}
        if cfg.silence_fraction > 0:
            for split, data in (("train", self.train_data), ("val", val_data)):
                ahead = self.model_cfg.lookahead_ms
                self.silence[split] = SilenceDraw.of(data, cfg.silence_fraction, self.n_frames, ahead)
        self.validation_id = f"silence {cfg.silence_fraction:g}" if cfg.silence_fraction > 0 else ""
        self.val_batches: list[GeneratorBatch] = fixed_batches(
            s.val_batches, s.seed + 7919, lambda rng: self._draw(val_data, rng, "val")
        )

    def _draw(self, data: PreparedData, rng: np.random.Generator, split: str) -> GeneratorBatch:
        b, ahead = self.cfg.schedule.batch_size, self.model_cfg.lookahead_ms
        return sample_generator_batch(data, rng, b, self.n_frames, ahead, self.silence[split])

    def state_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.net, "discriminator": self.disc}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"generator": self.opt_g, "discriminator": self.opt_d}

    def _inputs(self, b: GeneratorBatch) -> dict[str, torch.Tensor]:
        dev = self.env.device
        bsz, n = b.targets.shape[:2]
        targets = torch.from_numpy(b.targets).to(dev).flatten(0, 1)  # (B*n, 3, S, S)
        mels = torch.from_numpy(b.mels).to(dev).flatten(0, 1)  # (B*n, 1, 80, 16)
        refs = torch.from_numpy(b.references).to(dev)  # (B, 3, S, S)
        with torch.no_grad():
            audio = self.model.audio_encoder(mels)
            use_silent = self.stage == "generator" and self.cfg.use_silent
            identity = self.model.silence(refs) if use_silent else refs
        return {
            "targets": targets,
            "audio": audio,
            "identity": identity.repeat_interleave(n, 0),
            "sync_mels": torch.from_numpy(b.sync_mels).to(dev),
            "bsz": torch.tensor(bsz),
        }

    def _sync_terms(self, fake: torch.Tensor, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        b = int(x["bsz"])
        shape = (b, self.n_frames, *fake.shape[1:])
        sim_fake = self.syncnet.similarity(fake.view(shape), x["sync_mels"])
        with torch.no_grad():
            sim_gt = self.syncnet.similarity(x["targets"].view(shape), x["sync_mels"])
            sim_ref = self.syncnet.similarity(x["identity"].view(shape), x["sync_mels"])
        return {
            "sync": self._sync_loss(sim_fake, sim_gt, sim_ref),
            "sim_fake": sim_fake.detach().mean(),
            "sim_gt": sim_gt.mean(),
            "sim_gap": (sim_fake.detach() - sim_gt).abs().mean(),
        }

    def _sync_loss(self, sim_fake: torch.Tensor, sim_gt: torch.Tensor, sim_ref: torch.Tensor) -> torch.Tensor:
        """The configured sync loss of generated frames' similarities (the paper's L_ss or plain)."""
        if self.cfg.sync_loss == "stabilized":
            return stabilized_sync_loss(sim_fake, sim_gt, sim_ref)
        return plain_sync_loss(sim_fake)

    def _cross_sync_term(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """L_ss on the first half of the batch's frames generated from other items' audio
        (item i takes item i+1's mel windows): the frames' own pose and identity, speech of
        another moment, judged against that moment's real frames."""
        b, n = int(x["bsz"]), self.n_frames
        half = max(1, b // 2)
        rolled = {k: x[k].view(b, n, *x[k].shape[1:]).roll(-1, 0)[:half] for k in ("audio", "targets")}
        own = {k: x[k].view(b, n, *x[k].shape[1:])[:half] for k in ("identity", "targets")}
        fake = self.gen(
            own["identity"].flatten(0, 1), own["targets"].flatten(0, 1), rolled["audio"].flatten(0, 1)
        )
        mels = x["sync_mels"].roll(-1, 0)[:half]
        sim_fake = self.syncnet.similarity(fake.view(own["targets"].shape), mels)
        with torch.no_grad():
            sim_gt = self.syncnet.similarity(rolled["targets"], mels)
            sim_ref = self.syncnet.similarity(own["identity"], mels)
        return self._sync_loss(sim_fake, sim_gt, sim_ref)

    def _discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """One discriminator update on real and generated frames in one forward; -> its loss."""
        for p in self.disc.parameters():
            p.requires_grad_(True)
        logits, _ = self.disc_ddp(torch.cat([real, fake]))
        real_logits, fake_logits = logits.chunk(2)
        kind = self.cfg.gan_kind
        d_loss = 0.5 * (gan_loss(real_logits, True, kind) + gan_loss(fake_logits, False, kind))
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()  # type: ignore[no-untyped-call]
        self.opt_d.step()
        return d_loss

    def train_step(self, rng: np.random.Generator, step: int) -> dict[str, float]:
        w, s, kind = self.cfg.weights, self.cfg.schedule, self.cfg.gan_kind
        x = self._inputs(self._draw(self.train_data, rng, "train"))
        self.net.train()
        if self.cfg.fake_quant:
            fake_quant.freeze_batch_norm(self.net)
        fake = self.gen(x["identity"], x["targets"], x["audio"])
        terms = {
            "pixel": pixel_loss(fake, x["targets"]),
            "ssim_loss": perceptual_standin_loss(fake, x["targets"]),
        }
        total = w.pixel * terms["pixel"] + w.perceptual * terms["ssim_loss"]
        d_loss = torch.zeros(())
        if w.gan > 0 or w.perceptual * w.feature_matching > 0:  # else the discriminator rests
            d_loss = self._discriminator_step(x["targets"], fake.detach())
            for p in self.disc.parameters():
                p.requires_grad_(False)
            fake_logits, fake_feats = self.disc(fake)
            with torch.no_grad():
                _, real_feats = self.disc(x["targets"])
            terms["gan"] = gan_loss(fake_logits, True, kind, for_discriminator=False)
            terms["feature_matching"] = feature_matching_loss(fake_feats, real_feats)
            total = (
                total + w.gan * terms["gan"] + w.perceptual * w.feature_matching * terms["feature_matching"]
            )
        logs: dict[str, float] = {}
        if self.stage == "generator":
            if self.cfg.sync_loss != "none" and w.sync > 0:
                sync = self._sync_terms(fake, x)
                total = total + w.sync * sync["sync"]
                logs.update({k: float(v.detach()) for k, v in sync.items()})
                if w.cross_sync > 0:
                    terms["cross_sync"] = self._cross_sync_term(x)
                    total = total + w.cross_sync * terms["cross_sync"]
            if w.triplet > 0:
                terms["triplet"] = adaptive_triplet_loss(
                    lower_half(fake), lower_half(x["targets"]), lower_half(x["identity"])
                )
                total = total + w.triplet * terms["triplet"]
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(self.net.parameters(), s.grad_clip)
        self.opt_g.step()
        logs.update({k: float(v.detach()) for k, v in terms.items()})
        logs.update({"total": float(total.detach()), "disc": float(d_loss.detach())})
        return logs

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.net.eval()
        rows: dict[str, list[float]] = {
            "l1": [],
            "psnr": [],
            "ssim": [],
            "sim_fake": [],
            "sim_gt": [],
            "sim_gap": [],
        }
        for b in self.val_batches:
            x = self._inputs(b)
            fake = self.gen_raw(x["identity"], x["targets"], x["audio"])
            mse = ((fake - x["targets"]) ** 2).flatten(1).mean(1).clamp(min=1e-10)
            rows["l1"].append(float(pixel_loss(fake, x["targets"])))
            rows["psnr"].append(float((10 * torch.log10(1.0 / mse)).mean()))
            rows["ssim"].append(float(ssim(fake, x["targets"]).mean()))
            if self.stage == "generator":
                sync = self._sync_terms(fake, x)
                for k in ("sim_fake", "sim_gt", "sim_gap"):
                    rows[k].append(float(sync[k]))
        self.net.train()
        out = {k: float(np.mean(v)) for k, v in rows.items() if v}
        # best checkpoint: reconstruction, plus (G_L) the gap to the ground truth's sync score
        out["score"] = out["l1"] + out.get("sim_gap", 0.0)
        return out

    def save_checkpoint(self, path: Path) -> None:
        extra = {
            "stage": self.stage,
            "use_silent": "true" if (self.stage == "silent" or self.cfg.use_silent) else "false",
            "sync_loss": self.cfg.sync_loss,
        }
        checkpoint.save(path, self.model, self.model_cfg, extra=extra)
