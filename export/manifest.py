"""manifest.json of an export directory: what the graphs are, for which preset, and how to feed them."""

from __future__ import annotations

from dataclasses import dataclass, field

from stablesync.audio import MelConfig

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class GraphInfo:
    file: str
    inputs: dict[str, str]  # name -> dtype
    outputs: dict[str, str]
    sha256: str


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
