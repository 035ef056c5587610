"""Finding the videos of a source tree and their split, for `stablesync data prepare`.

Layouts:
- `folder`: every video file under SRC (any depth). The split comes from SRC/manifest.json when
  SRC is a synthetic corpus (`stablesync data synth`), otherwise from a hash of the clip id
  (90 % train, 5 % val, 5 % test) so it never changes between runs.
- `lrs2`: LRS2/LRS3-style trees: videos under SRC/main (or SRC/pretrain, SRC/trainval,
  SRC/test, or SRC itself) as <speaker or video id>/<utterance>.mp4, with the split read from
  SRC/train.txt, val.txt, test.txt (first field of each line: `<speaker>/<utterance>`);
  pretrain.txt counts as train. Clips in no list are hashed like `folder`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from stablesync.data.text import Split
from stablesync.errors import UserError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".flv")


@dataclass(frozen=True)
class SourceItem:
    clip_id: str  # unique, filesystem-safe
    path: Path
    split: Split


def hashed_split(clip_id: str) -> Split:
    bucket = int(hashlib.sha1(clip_id.encode()).hexdigest()[:8], 16) % 100
    return "train" if bucket < 90 else "val" if bucket < 95 else "test"


def _clip_id(rel: Path) -> str:
    parts = [*rel.parent.parts, rel.stem]
    safe = "_".join(p.replace(" ", "-") for p in parts if p not in ("", "."))
    return safe or "clip"


def _videos(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
    )


def _synth_splits(src: Path) -> dict[str, Split]:
    path = src / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text("utf-8"))
        return {str(c["video"]): c["split"] for c in manifest["clips"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: not a synthetic corpus manifest ({exc}); remove it or fix it") from None


def _lrs2_splits(src: Path) -> dict[str, Split]:
    splits: dict[str, Split] = {}
    for name, split in (("pretrain", "train"), ("train", "train"), ("val", "val"), ("test", "test")):
        path = src / f"{name}.txt"
        if path.is_file():
            for line in path.read_text("utf-8").splitlines():
                fields = line.split()
                if fields:
                    splits[fields[0]] = split  # type: ignore[assignment]
    return splits


def discover(src: Path, layout: str) -> list[SourceItem]:
    items: list[SourceItem] = []
    if layout == "folder":
        known = _synth_splits(src)
        for path in _videos(src):
            rel = path.relative_to(src)
            clip_id = _clip_id(rel)
            items.append(SourceItem(clip_id, path, known.get(rel.as_posix(), hashed_split(clip_id))))
    elif layout == "lrs2":
        lists = _lrs2_splits(src)
        roots = [src / d for d in ("main", "pretrain", "trainval", "test") if (src / d).is_dir()] or [src]
        for root in roots:
            for path in _videos(root):
                rel = path.relative_to(root)
                key = rel.with_suffix("").as_posix()
                clip_id = _clip_id(rel)
                items.append(SourceItem(clip_id, path, lists.get(key, hashed_split(clip_id))))
    else:
        raise UserError(f"--layout {layout}: expected folder or lrs2")
    seen: set[str] = set()
    for item in items:
        if item.clip_id in seen:
            raise UserError(f"{item.path}: two source videos map to the clip id {item.clip_id!r}; rename one")
        seen.add(item.clip_id)
    return items
