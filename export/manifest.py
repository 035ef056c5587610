"""manifest.json of an export directory: what the graphs are, for which preset, and how to feed them.

Torch-free. `read_manifest(directory)` is the one place an export directory is opened: a
missing, corrupt or foreign manifest gives a one-line UserError naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from stablesync.audio import MelConfig
from stablesync.errors import UserError
from stablesync.typed_config import from_dict, to_dict

MANIFEST_VERSION = 1
MANIFEST_FILE = "manifest.json"
MIN_INT8_PSNR_DB = 35.0  # the int8 frame graph's output vs the fp32 graph's, below which it is not used


@dataclass(frozen=True)
class GraphInfo:
    file: str
    inputs: dict[str, str]  # name -> dtype
    outputs: dict[str, str]
    sha256: str


@dataclass(frozen=True)
class Int8Check:
    """frame_int8 against frame on clips it was not calibrated on: what the CPU engine relies on
    before it runs the int8 graph (`int8_usable`)."""

    passed: bool
    psnr_db: float  # generated crops, int8 vs fp32, over every frame
    mouth_opening_r: float  # Pearson r of the mouth opening measured on int8 vs fp32 crops
    opening_std_ratio: float  # the mouth opening's std, int8 / fp32: below 1 the mouth moves less
    frames: int
    inputs: str  # the clips measured, e.g. "corpus /tmp/corp_prep split test"
    real_faces: str = ""  # the real-face benchmark run with each graph, summarised in one line


MAX_REFERENCE_VIEWS = 8  # len(stablesync.face.reference_views.VIEWS), tied by tests/test_reference.py


@dataclass(frozen=True)
class Manifest:
    manifest_version: int
    preset: str
    image_size: int
    fps: float
    lookahead_ms: float
    window_frames: int
    mel: MelConfig
    feature_shapes: tuple[tuple[int, int, int], ...]  # (C, H, W) per generator level
    opset: int
    weights_sha256: str
    graphs: dict[str, GraphInfo]  # "reference", "frame", optional "syncnet", "frame_int8"
    parity_max_abs_error: dict[str, float] = field(default_factory=dict)
    stablesync_version: str = ""
    # "float32", or "float16": ONNX initializers stored in fp16 and cast to fp32 inside the graph.
    weights_dtype: str = "float32"
    exporter: str = ""  # "torchscript" or "dynamo"
    checkpoint: str = ""  # the lipsync checkpoint beside the graphs (the "torch" backend reads it)
    parity_inputs: str = ""  # what the "corpus" parity inputs were (dataset, demo assets, synthetic)
    int8_psnr_db: float | None = None  # frame_int8 vs frame on corpus inputs (only kept if >= 35 dB)
    int8_speedup: float | None = None  # fp32 ms / int8 ms per frame, batch 1, onnxruntime CPU
    max_batch: int = 8  # the TensorRT optimisation profile's upper batch
    int8_check: Int8Check | None = None  # recorded by `python -m stablesync.export.int8_quality --record`
    # how many shifted views of the reference crop the live session averages
    # (realtime/pipeline/reference.py); 1, the crop as it is: exports before it was recorded, and
    # personal profiles, which are fine-tuned on exact crops
    reference_views: int = 1

    @property
    def n_levels(self) -> int:
        return len(self.feature_shapes)

    def feature_names(self) -> list[str]:
        return [f"feat{i}" for i in range(self.n_levels)]


def int8_usable(manifest: Manifest) -> bool:
    """The export lists frame_int8 and its recorded quality check passed. Exports without an
    `int8_check` (written by `stablesync export --int8`, which drops a graph below 35 dB) rely
    on `int8_psnr_db`."""
    if "frame_int8" not in manifest.graphs:
        return False
    if manifest.int8_check is not None:
        return manifest.int8_check.passed
    return manifest.int8_psnr_db is not None and manifest.int8_psnr_db >= MIN_INT8_PSNR_DB


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Writes DIR/manifest.json atomically."""
    path = Path(directory) / MANIFEST_FILE
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(to_dict(manifest), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(directory: str | Path) -> Manifest:
    """DIR/manifest.json -> Manifest; UserError naming the file on anything unexpected."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not directory.is_dir():
        raise UserError(f"{directory}: export directory not found (write one with `stablesync export`)")
    if not path.is_file():
        raise UserError(f"{path}: not found; expected an export directory written by `stablesync export`")
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not readable JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object")
    version = raw.get("manifest_version")
    if version != MANIFEST_VERSION:
        raise UserError(
            f"{path}: manifest_version {version!r}, expected {MANIFEST_VERSION}: re-export the checkpoint"
        )
    manifest = from_dict(Manifest, raw, where=str(path))
    for name in ("reference", "frame"):
        if name not in manifest.graphs:
            raise UserError(f"{path}: lists no {name!r} graph")
    if not 1 <= manifest.reference_views <= MAX_REFERENCE_VIEWS:
        views = manifest.reference_views
        raise UserError(f"{path}: reference_views {views}, expected 1 to {MAX_REFERENCE_VIEWS}")
    return manifest


def check_graph_file(directory: str | Path, manifest: Manifest, name: str) -> Path:
    """The graph's file exists and has the checksum the manifest recorded."""
    info = manifest.graphs[name]
    path = Path(directory) / info.file
    if not path.is_file():
        raise UserError(f"{path}: graph {name!r} listed in manifest.json is missing")
    actual = sha256_file(path)
    if actual != info.sha256:
        raise UserError(
            f"{path}: sha256 {actual[:12]} differs from manifest.json's {info.sha256[:12]}"
            " (corrupt, or from another export)"
        )
    return path
