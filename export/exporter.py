"""`stablesync export`'s work: graphs, checks, manifest, optional int8 and TensorRT (torch).

Everything is written into a temporary folder beside DIR, checked there, and only then moved
into DIR file by file with manifest.json last: a failed or interrupted export never leaves a
manifest that lists graphs it does not describe.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch

from stablesync import __version__, checkpoint
from stablesync.errors import UserError
from stablesync.export import graphs
from stablesync.export.fold import as_exported, round_weights_fp16
from stablesync.export.fp16_weights import store_initializers_fp16
from stablesync.export.manifest import (
    MANIFEST_FILE,
    MANIFEST_VERSION,
    GraphInfo,
    Manifest,
    sha256_file,
    write_manifest,
)
from stablesync.export.sample_inputs import InputSpec, corpus_like_inputs, random_inputs
from stablesync.export.verify import Tolerance, full_check, lipsync_parity, syncnet_parity
from stablesync.models import PRESETS, AVSyncNet, LipSyncConfig, LipSyncModel

CHECKPOINT_FILE = "lipsync.safetensors"


@dataclass(frozen=True)
class ExportOptions:
    opset: int = 18
    exporter: str = "torchscript"
    fp16_weights: bool = False  # ONNX initializers (and the checkpoint beside them) stored as fp16
    int8: bool = False
    tensorrt: bool = False
    max_batch: int = 8
    parity_batch: int = 2
    corpus: Path | None = None
    intra_op_threads: int = 2
    write_checkpoint: bool = True  # the lipsync checkpoint beside the graphs (for the torch backend)
    # the reference views the session averages (Manifest.reference_views): 8 for weights trained
    # on a corpus (the real-face benchmark, RESULTS.md session 35), 1 for personal profiles
    reference_views: int = 8


def preset_of(cfg: LipSyncConfig) -> str:
    for name, preset in PRESETS.items():
        if preset.lipsync == cfg:
            return name
    return "custom"


def _io(model: onnx.ModelProto) -> tuple[dict[str, str], dict[str, str]]:
    def dtype(v: onnx.ValueInfoProto) -> str:
        return str(onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type))

    return {v.name: dtype(v) for v in model.graph.input}, {v.name: dtype(v) for v in model.graph.output}


def _write_graph(
    module: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    names: tuple[list[str], list[str]],
    preset: str,
    image_size: int,
    options: ExportOptions,
) -> GraphInfo:
    model = graphs.export_graph(module, args, path, names[0], names[1], options.opset, options.exporter)
    graphs.tag_graph(model, preset, path.stem, image_size)
    if options.fp16_weights:
        store_initializers_fp16(model)
    onnx.save(model, str(path))
    full_check(path)
    inputs, outputs = _io(model)
    return GraphInfo(file=path.name, inputs=inputs, outputs=outputs, sha256=sha256_file(path))


def export_model(
    model: LipSyncModel,
    out: Path,
    options: ExportOptions = ExportOptions(),
    preset: str | None = None,
    syncnet: AVSyncNet | None = None,
    log: Callable[[str], None] = print,
) -> Manifest:
    """Exports `model` (and optionally `syncnet`) into directory `out`; returns the manifest written."""
    cfg = model.cfg
    preset = preset or preset_of(cfg)
    model = model.eval()
    graph_model = model
    if options.fp16_weights:  # on copies: the caller's models keep their weights
        # the checkpoint keeps batch norm; the graphs get it folded from the checkpoint's weights and
        # rounded again, exactly as the torch backend rebuilds them from that checkpoint
        model = copy.deepcopy(model)
        round_weights_fp16(model)
        graph_model = copy.deepcopy(model)
        as_exported(graph_model, fp16_weights=True)
        if syncnet is not None:
            syncnet = copy.deepcopy(syncnet).eval()
            as_exported(syncnet, fp16_weights=True)
    s, w = cfg.generator.image_size, cfg.audio.window_frames
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; expected a directory to export into")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        manifest = _export_into(graph_model, model, syncnet, tmp, preset, options, s, w, log)
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(tmp.iterdir()):
            if item.name == MANIFEST_FILE:
                continue
            target = out / item.name
            if item.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            item.replace(target)
        write_manifest(out, manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {out / MANIFEST_FILE}")
    return manifest


def _export_into(
    model: LipSyncModel,
    checkpoint_model: LipSyncModel,
    syncnet: AVSyncNet | None,
    tmp: Path,
    preset: str,
    options: ExportOptions,
    s: int,
    w: int,
    log: Callable[[str], None],
) -> Manifest:
    cfg = model.cfg
    b = options.parity_batch
    ref = torch.rand(b, 3, s, s)
    with torch.no_grad():
        feats = model.encode_reference(ref)
    feat_names = [f"feat{i}" for i in range(len(feats))]
    infos = {
        "reference": _write_graph(
            graphs.ReferenceGraph(model),
            (ref,),
            tmp / "reference.onnx",
            (["reference"], feat_names),
            preset,
            s,
            options,
        ),
        "frame": _write_graph(
            graphs.FrameGraph(model),
            (*feats, torch.rand(b, 3, s, s), torch.randn(b, 1, cfg.mel.n_mels, w)),
            tmp / "frame.onnx",
            ([*feat_names, "frames", "mels"], ["face"]),
            preset,
            s,
            options,
        ),
    }
    if syncnet is not None:
        n = syncnet.cfg.visual.n_frames
        infos["syncnet"] = _write_graph(
            graphs.SyncGraph(syncnet.eval()),
            (torch.rand(b, n, 3, s, s), torch.randn(b, 1, cfg.mel.n_mels, w)),
            tmp / "syncnet.onnx",
            (["frames", "mel"], ["similarity"]),
            preset,
            s,
            options,
        )
    if options.write_checkpoint:
        dtype = torch.float16 if options.fp16_weights else None
        checkpoint.save(tmp / CHECKPOINT_FILE, checkpoint_model, cfg, extra={"preset": preset}, dtype=dtype)
    spec = InputSpec(image_size=s, window_frames=w, fps=cfg.fps, lookahead_ms=cfg.lookahead_ms, mel=cfg.mel)
    corpus = corpus_like_inputs(spec, b, options.corpus)
    manifest = Manifest(
        manifest_version=MANIFEST_VERSION,
        preset=preset,
        image_size=s,
        fps=cfg.fps,
        lookahead_ms=cfg.lookahead_ms,
        window_frames=w,
        mel=cfg.mel,
        feature_shapes=tuple((int(f.shape[1]), int(f.shape[2]), int(f.shape[3])) for f in feats),
        opset=options.opset,
        weights_sha256=graphs.weights_sha256(checkpoint_model),
        graphs=infos,
        stablesync_version=__version__,
        weights_dtype="float16" if options.fp16_weights else "float32",
        exporter=options.exporter,
        checkpoint=CHECKPOINT_FILE if options.write_checkpoint else "",
        parity_inputs=corpus.source,
        max_batch=options.max_batch,
        reference_views=options.reference_views,
    )
    # fp16 storage: the graphs hold exactly the folded, rounded torch weights; only the order of
    # the float arithmetic differs, which on large features is measured relative to them
    tol = Tolerance(1e-4, relative=options.fp16_weights)
    samples = [random_inputs(spec, b), corpus]
    errors = lipsync_parity(model, tmp, manifest, samples, tol, options.intra_op_threads)
    if syncnet is not None:
        errors.update(syncnet_parity(syncnet, tmp / "syncnet.onnx", samples, tol))
    for key, err in errors.items():
        log(f"parity {key:<18} max abs error {err:.2e} (onnxruntime vs PyTorch)")
    manifest = dataclasses.replace(manifest, parity_max_abs_error=errors)
    if options.int8:
        from stablesync.export.quantize import quantize_frame

        manifest = quantize_frame(tmp, manifest, corpus_like_inputs(spec, 8, options.corpus), log)
    if options.tensorrt:
        from stablesync.export.backends.tensorrt_engine import build_engines

        build_engines(tmp, manifest, log)
    write_manifest(tmp, manifest)  # the complete set is only moved into place once all this passed
    return manifest


def load_for_export(checkpoint_path: Path) -> LipSyncModel:
    model, _ = checkpoint.load(checkpoint_path, expect_arch="lipsync")
    if not isinstance(model, LipSyncModel):
        raise UserError(f"{checkpoint_path}: expected a lipsync checkpoint")
    return model
