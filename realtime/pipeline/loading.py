"""Finding and opening the inference engine of the real-time path (never torch unless asked).

Default weights: the exported engine directory `stablesync/assets/weights/cpu-rt/` shipped with
the package. Without it the product refuses to run on random weights and says how to make them.
"""

from __future__ import annotations

from pathlib import Path

import stablesync
from stablesync.errors import UserError
from stablesync.export.engine import Engine

DEFAULT_PRESET = "cpu-rt"


def default_weights_dir(preset: str = DEFAULT_PRESET) -> Path:
    return Path(stablesync.__file__).resolve().parent / "assets" / "weights" / preset


def resolve_weights(weights: str | Path | None) -> Path:
    """The export directory to load: `weights` if given, else the bundled default."""
    if weights is not None:
        path = Path(weights)
        if not (path / "manifest.json").is_file():
            raise UserError(
                f"--weights {path}: no manifest.json; expected a directory written by `stablesync export`"
            )
        return path
    path = default_weights_dir()
    if not (path / "manifest.json").is_file():
        raise UserError(
            f"no trained weights at {path}; train and export them (`stablesync train ...` then"
            f" `stablesync export --checkpoint CKPT --out {path}`) or pass --weights DIR"
        )
    return path


def profile_weights(name: str) -> Path:
    """`--profile NAME`: the export directory of that finished `stablesync enroll` profile."""
    from stablesync.enroll.profiles import weights_of

    return weights_of(name)


def limit_blas_threads() -> None:
    """numpy's BLAS to one thread in this process, whatever loaded it first. The real-time path
    gives it only small matmuls; with more threads its workers spin in `sched_yield` between
    them (a whole core in a paced session, measured). `stablesync run/serve/demo` also set
    OPENBLAS_NUM_THREADS before numpy loads; this covers every other process that opens a live
    engine (benchmarks, tests, an application embedding the pipeline)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


ONE_CALL_THREADS = 1  # onnxruntime CPU threads per call, unless told otherwise


def open_engine(
    weights: str | Path | None,
    backend: str = "auto",
    threads: int = ONE_CALL_THREADS,
    *,
    memory_arena: bool = True,
) -> Engine:
    """Loads the engine, with numpy's BLAS limited to one thread (`limit_blas_threads`). "auto"
    here never picks the torch backend (the real-time path stays torch-free); pass `--backend
    torch` explicitly to use it.

    One onnxruntime thread per call by default: a frame is a small graph, and a second intra-op
    thread costs more CPU than it saves time (the shipped int8 graph at batch 1 on the 2-core
    Xeon: 6.5 ms of CPU and of wall time on one thread, 8.5 ms of CPU for 5.7 ms on two; in a
    paced 720p session the inference thread's 8.5 ms a frame against 9.2 on two, a difference the
    whole session's CPU figure does not resolve from its noise). A live filter shares the machine
    with the call app, so CPU is what it must save; `--threads` still asks for more."""
    from stablesync.export import load_engine
    from stablesync.export.backends import pick_auto

    limit_blas_threads()
    directory = resolve_weights(weights)
    if backend == "auto":
        backend = pick_auto()
        if backend == "torch":
            backend = "ort-cpu"
    return load_engine(directory, backend, intra_op_threads=threads, memory_arena=memory_arena)


def open_serve_engine(weights: str | Path | None, backend: str = "auto") -> Engine:
    """An engine as `serve` opens it for its sessions (the default one and each profile's): one
    onnxruntime thread per inference worker, since the sessions' frames run side by side, and no
    onnxruntime memory arena, since the batch sizes vary with the sessions open and the arena
    would keep the largest it ever saw (issue 21's soak: memory flat over a long run)."""
    return open_engine(weights, backend, ONE_CALL_THREADS, memory_arena=False)
