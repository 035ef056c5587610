"""One enroll from a recording: check, prepare, fine-tune, export, validate (the steps in order).

Everything goes into the profile folder (mode 0700): the export (what `--profile NAME` loads),
`profile.json`, `report.json`, `contact_sheet.png`, `preview.mp4`, and while it runs `work/`
(the prepared take and the training run, removed at the end unless `keep_work`). An
interrupted enroll keeps `work/` and its last checkpoint; `resume` continues from there.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from stablesync.enroll.checks import TakeChecks, check_take
from stablesync.enroll.profiles import is_complete, make_profile_dir
from stablesync.enroll.take import prepare_take
from stablesync.errors import UserError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "assets" / "weights" / "cpu-rt"


@dataclass(frozen=True)
class EnrollConfig:
    name: str
    video: Path
    audio: NDArray[np.float32]  # 16 kHz mono: the take's own sound or --audio
    minutes: float = 6.0  # training budget
    steps: int = 0  # > 0: this many steps instead of the budget
    holdout_fraction: float = 0.15
    validate_s: float = 8.0  # at most this much of the held-aside part is rendered
    shipped_dir: Path = SHIPPED_DIR
    resume: bool = False
    overwrite: bool = False
    keep_work: bool = False
    threads: int = 2
    batch_size: int = 8
    checks: TakeChecks = field(default_factory=TakeChecks)
    seed: int = 0
    cross_sync: float | None = None  # None: enroll.finetune's CROSS_SYNC_WEIGHT
    reference_views: int | None = None  # None: enroll.finetune's REFERENCE_VIEWS


def check_profile_free(name: str, overwrite: bool, resume: bool) -> Path:
    """The profile's folder; refuses to replace a profile or an interrupted enroll unasked
    (asked before a camera take is recorded, and again before anything is written)."""
    from stablesync.enroll.profiles import profile_dir

    path = profile_dir(name)
    if overwrite:
        return path
    if is_complete(path) and not resume:
        raise UserError(f"profile {name}: exists ({path}); pass --overwrite or `stablesync profiles remove`")
    elif (path / "work").is_dir() and not resume:
        raise UserError(
            f"profile {name}: an interrupted enroll is in {path / 'work'}; pass --resume to continue it"
            " or --overwrite to start again"
        )
    return path


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    tmp.replace(path)


def export_profile(checkpoint_path: Path, out: Path, corpus: Path, reference_views: int) -> None:
    """The fine-tuned checkpoint as an export directory (graphs, parity check, manifest) whose
    sessions average `reference_views` views of the reference: the views its fine-tune drew
    references from (`Plan.reference_views`), since a profile fine-tuned on exact crops lost 6.5 dB
    of mouth PSNR on talk1 with 8 averaged views (RESULTS.md, session 35)."""
    from stablesync.export.exporter import ExportOptions, export_model, load_for_export

    model = load_for_export(checkpoint_path)
    options = ExportOptions(fp16_weights=True, corpus=corpus, reference_views=reference_views)
    export_model(model, out, options, preset="cpu-rt", log=lambda line: print(f"export: {line}", flush=True))


def enroll(cfg: EnrollConfig) -> dict[str, Any]:
    """Runs every step; -> the profile's report."""
    from stablesync.enroll.finetune import CROSS_SYNC_WEIGHT, REFERENCE_VIEWS, FinetuneConfig, finetune
    from stablesync.enroll.validate import compare, contact_sheet, preview, read_segment

    began = time.perf_counter()
    if not cfg.video.is_file():
        raise UserError(f"--video {cfg.video}: not found; expected a recording of you speaking")
    out = check_profile_free(cfg.name, cfg.overwrite, cfg.resume)
    work = out / "work"
    if not (cfg.resume and (work / "prepared" / "take.json").is_file()):
        summary = check_take(cfg.video, cfg.audio, cfg.checks)
        print(f"enroll: take of {summary.duration_s:.1f} s: one face, lit, speech; preparing", flush=True)
    if cfg.overwrite and out.exists():
        shutil.rmtree(out)
    make_profile_dir(cfg.name)
    split = prepare_take(cfg.video, cfg.audio, work, cfg.holdout_fraction)
    print(
        f"enroll: {split.split_frame} frames to learn from, {split.n_frames - split.split_frame} kept aside",
        flush=True,
    )
    ft = FinetuneConfig(
        prepared=split.prepared,
        out_dir=work / "train",
        init=cfg.shipped_dir / "lipsync.safetensors",
        budget_s=cfg.minutes * 60.0,
        steps=cfg.steps,
        threads=cfg.threads,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        cross_sync=CROSS_SYNC_WEIGHT if cfg.cross_sync is None else cfg.cross_sync,
        reference_views=REFERENCE_VIEWS if cfg.reference_views is None else cfg.reference_views,
    )
    last = finetune(ft, cfg.resume)
    plan = json.loads((work / "plan.json").read_text())
    export_profile(last, out, split.prepared, plan.get("reference_views", 1))
    report: dict[str, Any] = {"validated": False}
    segment = read_segment(cfg.video, cfg.audio, split.split_s, cfg.validate_s)
    if segment.frames and cfg.validate_s > 0:
        print(
            f"enroll: validating on {len(segment.frames)} held-aside frames (personal vs shipped)", flush=True
        )
        cmp = compare(out, cfg.shipped_dir, segment)
        report = cmp.report
        contact_sheet(out / "contact_sheet.png", segment, cmp)
        preview(out / "preview.mp4", segment, cmp.personal)
    _write_json(out / "report.json", report)
    info = {
        "name": cfg.name,
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "source": str(cfg.video),
        "footage_s": round(split.footage_s, 2),
        "trained_on_s": round(split.split_s, 2),
        "held_out_s": round(split.footage_s - split.split_s, 2),
        "steps": plan["steps"],
        "step_s": plan["step_s"],
        "silent_steps": plan.get("silent_steps", 0),
        "rest_frames": len(plan.get("rest_frames", ())),
        "rest_kind": plan.get("rest_kind", ""),
        "reference_views": plan.get("reference_views", 1),
        "enroll_wall_s": round(time.perf_counter() - began, 1),  # of this invocation
        "preset": "cpu-rt",
        "fine_tuned": (
            "G_S (the closed mouth, from the take's pauses or closed lips) and G_L;"
            " the audio encoder is the shipped one"
            if plan.get("silent_steps", 0)
            else "G_L (G_S and the audio encoder are the shipped ones: too few pauses or closed lips)"
        ),
    }
    _write_json(out / "profile.json", info)
    if not cfg.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return report
