"""A profile's fine-tune draws its identity references from the views its sessions average
(`stablesync.enroll.finetune.drawn_references`, `Plan.reference_views`)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from stablesync.enroll.finetune import Plan, _read_plan, appearances, drawn_references
from stablesync.face.reference_views import VIEWS, view_crop
from stablesync.train.data import to_chw


def _frames(n: int) -> np.ndarray:
    rng = np.random.default_rng(3)
    # smooth faces-sized crops: a shift of 1.5 px changes them, but not into each other
    base = rng.integers(0, 256, size=(n, 12, 12, 3), dtype=np.uint8)
    return np.stack([np.kron(f, np.ones((8, 8, 1), np.uint8)) for f in base])


def test_one_view_draws_the_references_as_they_are_and_nothing_from_the_rng() -> None:
    frames = _frames(4)
    rng = np.random.default_rng(0)
    assert np.array_equal(drawn_references(frames, rng, 1), to_chw(frames))
    assert rng.integers(1 << 30) == np.random.default_rng(0).integers(1 << 30)


def test_each_reference_is_drawn_as_it_is_or_as_one_of_the_views() -> None:
    frames = _frames(3)
    views = len(VIEWS)
    assert appearances(views) == views + 1
    seen: dict[int, set[int]] = {i: set() for i in range(len(frames))}
    rng = np.random.default_rng(1)
    for _ in range(40):
        drawn = drawn_references(frames, rng, views)
        for i, ref in enumerate(drawn):
            candidates = [frames[i]] + [view_crop(frames[i], v) for v in VIEWS]
            matches = [k for k, c in enumerate(candidates) if np.array_equal(ref, to_chw(c))]
            assert len(matches) == 1, (i, matches)
            seen[i].add(matches[0])
    # every appearance is drawn, the crop as it is among them
    assert all(s == set(range(views + 1)) for s in seen.values()), seen


def test_a_plan_written_before_the_views_resumes_with_the_references_as_they_are(tmp_path: Path) -> None:
    plan = Plan(steps=4, step_s=0.0, checkpoint_every=2, reference_views=8)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(dataclasses.asdict(plan)))
    assert _read_plan(path) == plan
    older = {k: v for k, v in dataclasses.asdict(plan).items() if k != "reference_views"}
    path.write_text(json.dumps(older))
    assert _read_plan(path).reference_views == 1


def test_a_profile_fine_tuned_on_shifted_views_averages_them(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """enroll with `reference_views` 8 (the benchmark's `--reference-views 8`): G_S of every pool
    frame in every appearance is cached before training, and the profile's manifest says 8."""
    from stablesync.enroll import finetune
    from stablesync.enroll.pipeline import EnrollConfig, enroll
    from stablesync.media import read_audio

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    cached: list[int] = []
    original = finetune.enroll_task

    def counted(stage: object, caches: finetune.FrozenCaches, views: int) -> object:
        task = original(stage, caches, views)  # type: ignore[arg-type]
        cached.append(len(caches.identity.rows))
        return task

    monkeypatch.setattr(finetune, "enroll_task", counted)
    video = tiny_corpus / "clip00000.mp4"
    config = EnrollConfig(
        name="views", video=video, audio=read_audio(video, 16_000), steps=1, batch_size=2, validate_s=0.0
    )
    enroll(dataclasses.replace(config, reference_views=len(VIEWS)))
    profile = tmp_path / "xdg" / "stablesync" / "profiles" / "views"
    assert json.loads((profile / "manifest.json").read_text())["reference_views"] == len(VIEWS)
    assert json.loads((profile / "profile.json").read_text())["reference_views"] == len(VIEWS)
    pool = len(finetune.reference_pool(10_000))
    assert cached == [appearances(len(VIEWS)) * pool], cached


def test_a_view_count_outside_the_views_is_refused_in_one_line(tmp_path: Path) -> None:
    from stablesync.enroll.finetune import FinetuneConfig, finetune
    from stablesync.errors import UserError

    for views in (0, len(VIEWS) + 1):
        cfg = FinetuneConfig(
            prepared=tmp_path, out_dir=tmp_path / "train", init=tmp_path / "x", reference_views=views
        )
        with pytest.raises(UserError, match=f"reference views {views}: expected 1 to {len(VIEWS)}"):
            finetune(cfg, resume=False)
