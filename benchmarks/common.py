"""What every benchmark writes beside its figures: the machine, the commit, the date, versions."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

LIBRARIES = ("numpy", "onnxruntime", "onnxruntime-gpu", "torch", "mediapipe", "av", "aiortc", "tensorrt")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip().splitlines()[0] or None
    except (OSError, subprocess.SubprocessError, IndexError):
        return None


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process (this one by default) in MB, from /proc (Linux); NaN if gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


# struct mallinfo2, all ten size_t fields in order (it is returned by value: the size must match)
MALLINFO2_FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()  # noqa: SIM905


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]


def malloc_mb() -> dict[str, float]:
    """glibc's malloc over all arenas (`mallinfo2`, glibc >= 2.33; {} elsewhere): bytes in use in
    the heaps, free in them, and in chunks mapped on their own (large blocks such as
    onnxruntime's arena extensions)."""
    try:
        call = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return {}
    call.restype = _MallInfo2
    info = call()
    mb = 1024.0 * 1024.0
    return {
        "heap_in_use": round(info.uordblks / mb, 2),
        "heap_free": round(info.fordblks / mb, 2),
        "mmapped": round(info.hblkhd / mb, 2),
        "mmapped_blocks": info.hblks,
    }


def os_threads() -> int:
    """This process's threads as the OS counts them (native ones included); -1 without /proc."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return -1


def proc_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields from the state on (state, ppid, ..., utime at 11, stime at 12)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (`serve`'s session workers), from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(proc_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue  # exited meanwhile
    return found


def workers_rss_mb(pid: int) -> float:
    """The resident memory of the live child processes of `pid` together, in MB."""
    return sum(rss_mb(child) for child in children(pid))


def process_figures(pid: int) -> dict[str, float]:
    """RSS (MB), open file descriptors and threads of a process, and its live child processes
    (`workers`) and their RSS together (`workers_rss_mb`), from /proc (Linux)."""
    threads = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                threads = int(line.split()[1])
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    workers = children(pid)
    return {
        "rss_mb": round(rss_mb(pid), 1),
        "fds": fds,
        "threads": threads,
        "workers": len(workers),
        "workers_rss_mb": round(sum(rss_mb(w) for w in workers), 1),
    }


def fd_kinds(pid: int) -> dict[str, int]:
    """How many of a process's open fds are sockets, pipes, eventfds, files... (their link targets
    with the inode numbers dropped: "socket", "pipe", "anon_inode:[eventfd]", "file", "/dev/...")."""
    kinds: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:  # closed while listed
                continue
            kinds[_fd_kind(target)] += 1
    return dict(kinds.most_common())


def _fd_kind(target: str) -> str:
    if target.startswith("/dev/"):
        return target
    if target.startswith("/"):
        return "file"
    return re.sub(r":\[\d+\]$", "", target)  # "socket:[123]" -> "socket"; "anon_inode:[eventfd]" stays


def thread_names(pid: int) -> dict[str, int]:
    """How many of a process's threads carry each name (pools show as one name, many threads)."""
    names: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                names[(task / "comm").read_text().strip()] += 1
    return dict(names.most_common())


def environment() -> dict[str, Any]:
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            continue
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "gpu": _gpu_name(),
        "python": platform.python_version(),
        "commit": _commit(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": versions,
    }


def write_result(path: str | Path, name: str, figures: dict[str, Any]) -> Path:
    """Writes {"benchmark", "environment", "figures"} as JSON (atomically) and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(
        json.dumps({"benchmark": name, "environment": environment(), "figures": figures}, indent=2)
    )
    tmp.replace(path)
    return path
