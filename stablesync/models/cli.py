"""`stablesync presets`: the model presets with their parameters and GFLOPs per frame.

Sizes are computed on the meta device (shapes only, no weights allocated, no arithmetic), so
listing even the 256x256 preset is instant.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads only when the presets are listed, not for --help
    from stablesync.models.lipsync import LipSyncModel


def model_cost(model: LipSyncModel) -> dict[str, float]:
    """Params (M) of the whole model and of the per-frame part, GFLOPs per frame and per reference.

    One multiply-add counts 2 FLOPs (torch.utils.flop_counter). Works on meta-device models.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    s = model.cfg.generator.image_size
    device = next(model.parameters()).device
    ref = torch.rand(1, 3, s, s, device=device)
    mels = torch.randn(1, 1, model.cfg.audio.n_mels, model.cfg.audio.window_frames, device=device)
    with torch.no_grad():
        with FlopCounterMode(display=False) as ref_counter:
            feats = model.encode_reference(ref)
        with FlopCounterMode(display=False) as frame_counter:
            model.generate(feats, torch.rand(1, 3, s, s, device=device), mels)

    def count(*modules: torch.nn.Module) -> float:
        return sum(p.numel() for m in modules for p in m.parameters()) / 1e6

    return {
        "params_m": count(model),
        "frame_params_m": count(model.talker, model.audio_encoder) - count(model.talker.identity_encoder),
        "gflops_per_frame": frame_counter.get_total_flops() / 1e9,
        "gflops_reference": ref_counter.get_total_flops() / 1e9,
    }


def preset_costs(name: str) -> dict[str, float]:
    import torch

    from stablesync.models.registry import create

    with torch.device("meta"):
        model = create(name).eval()
    return model_cost(model)


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="List the model presets with their sizes.")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def main(args: argparse.Namespace) -> int:
    from stablesync.models.registry import DEFAULT_PRESET, get_preset, list_presets

    rows = []
    for name in list_presets():
        preset = get_preset(name)
        size = preset.lipsync.generator.image_size
        rows.append({"name": name, "size": size, "description": preset.description, **preset_costs(name)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'preset':<10} {'size':>7} {'params':>8} {'per-frame':>10} {'GFLOPs/frame':>13} {'GFLOPs/ref':>11}"
    )
    for r in rows:
        mark = " (default)" if r["name"] == DEFAULT_PRESET else ""
        print(
            f"{r['name']:<10} {r['size']:>3}x{r['size']:<3}"
            f" {r['params_m']:>7.2f}M {r['frame_params_m']:>9.2f}M"
            f" {r['gflops_per_frame']:>13.2f} {r['gflops_reference']:>11.2f}  {r['description']}{mark}"
        )
    return 0
