"""The `stablesync` command: a thin dispatcher that imports each subcommand only when it is used.

Each subcommand module exposes `build_parser(prog: str) -> argparse.ArgumentParser` and
`main(args: argparse.Namespace) -> int`. Importing lazily keeps `stablesync run` free of
torch and `stablesync --help` instant.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from stablesync.errors import UserError

# name -> (module, one-line help). Order is the order shown by --help.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("stablesync.realtime.cli.demo", "run the bundled face and speech through the real-time filter"),
    "run": (
        "stablesync.realtime.cli.run",
        "live lip-sync: microphone + webcam or photo -> virtual camera/mic, file",
    ),
    "serve": ("stablesync.realtime.cli.serve", "serve the filter over WebRTC to browsers and apps"),
    "devices": (
        "stablesync.realtime.cli.devices",
        "list cameras, microphones, virtual cameras, audio outputs, tracker",
    ),
    "detect": (
        "stablesync.realtime.cli.detect",
        "is a video or picture marked by stablesync? (watermark, C2PA)",
    ),
    "data": ("stablesync.data.cli", "make the synthetic corpus or prepare a real dataset"),
    "train": ("stablesync.train.cli", "train AVSyncNet, the silent-lip generator or the generator"),
    "average": ("stablesync.train.average", "average the weights of one run's last checkpoints"),
    "eval": ("stablesync.evaluation.cli", "evaluate a checkpoint like the paper (LSE-C/D, PSNR, SSIM, LMD)"),
    "enroll": (
        "stablesync.realtime.cli.enroll",
        "a personal model of your face from a short recording of you",
    ),
    "profiles": ("stablesync.enroll.profiles_cli", "list, show or remove the profiles made by enroll"),
    "export": ("stablesync.export.cli", "export a checkpoint to ONNX (and TensorRT) for the real-time path"),
    "bench": ("stablesync.benchmarks.cli", "run the benchmark suite and write JSON, plots and RESULTS.md"),
    "presets": ("stablesync.models.cli", "list the model presets with their sizes"),
}


# The live commands keep numpy's BLAS to one thread: it only runs tiny matmuls there, and its
# per-core workers otherwise spin in sched_yield beside onnxruntime. Set before numpy loads.
LIVE_COMMANDS = ("demo", "run", "serve", "bench")
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS",)
# Commands whose terminal is kept free of third-party log noise (`--verbose` shows it).
QUIET_COMMANDS = ("demo", "run", "serve", "devices")


def limit_blas_threads() -> None:
    """One BLAS thread unless the user set the variables; only effective before numpy loads."""
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def _usage() -> str:
    width = max(len(n) for n in SUBCOMMANDS)
    lines = ["usage: stablesync <command> [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`stablesync <command> --help` describes a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from stablesync import __version__
        from stablesync.face import describe_trackers

        print(f"stablesync {__version__} ({describe_trackers()})")
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(
            f"stablesync: error: unknown command {name!r}; expected one of {', '.join(SUBCOMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module_name, _ = SUBCOMMANDS[name]
    if name in LIVE_COMMANDS:
        limit_blas_threads()
    noise = None
    if name in QUIET_COMMANDS:
        if "--verbose" in rest:
            rest = [a for a in rest if a != "--verbose"]
        elif "-h" not in rest and "--help" not in rest:
            from stablesync.noise import StderrFilter

            noise = StderrFilter()
    try:
        module = importlib.import_module(module_name)
        parser = module.build_parser(f"stablesync {name}")
        ns = parser.parse_args(rest)
        code: int = module.main(ns)
        return code
    except UserError as exc:
        print(f"stablesync {name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stablesync {name}: interrupted", file=sys.stderr)
        return 130
    finally:
        if noise is not None:
            noise.close()


if __name__ == "__main__":
    sys.exit(main())
