"""The layering of the README's table, checked without an import-linter dependency.

The top-level folders realtime/, export/ and benchmarks/ are the packages stablesync.realtime,
stablesync.export and stablesync.benchmarks (pyproject's note); "stablesync" below is the
paper's system, the folder stablesync/ without those three.
- The real-time path never imports torch: every module under realtime/ and export/, except the
  export modules built on PyTorch (TORCH_MODULES), imports in a fresh interpreter without torch
  appearing in sys.modules; no module under realtime/ imports torch even inside a function.
- Layers point one way: stablesync never imports realtime, export or benchmarks; export never
  imports realtime or benchmarks; realtime never imports benchmarks (every import statement, at
  any depth, read with ast).
  `stablesync.cli` names the front-end commands by string (`importlib`), the one way up.
- Nothing imports the folders by their bare names (`import realtime`), which would load a
  second copy of the same files beside stablesync.realtime when run from the checkout.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The export modules that build on PyTorch (they import torch at top level, or one of these).
TORCH_MODULES = frozenset(
    {
        "stablesync.export.exporter",
        "stablesync.export.fold",
        "stablesync.export.graphs",
        "stablesync.export.verify",
        "stablesync.export.backends.torch_engine",
    }
)

# Folders: the package each is installed as.
PACKAGE_OF = {
    "realtime": "stablesync.realtime",
    "export": "stablesync.export",
    "benchmarks": "stablesync.benchmarks",
}

# Packages each folder's modules must not import.
# benchmarks/ sits above all three (it drives the real-time session), so importing it from below
# reaches realtime through it.
FORBIDDEN = {
    "stablesync": ("stablesync.realtime", "stablesync.export", "stablesync.benchmarks"),
    "export": ("stablesync.realtime", "stablesync.benchmarks"),
    "realtime": ("stablesync.benchmarks",),
}

# Known breaches, file -> the imports allowed there. `stablesync enroll` fine-tunes, exports the
# profile and validates it through the offline session: an orchestrating command that lives
# inside stablesync/ (imported inside functions). The int8 check on real faces renders through
# the same offline session and measures as the real-face benchmark. The offline session
# (benchmarks/offline_render.py) and enroll's orchestration belong in realtime/; until they move
# each entry is a debt; none may be added silently.
KNOWN_BREACHES = {
    "stablesync/enroll/pipeline.py": {"stablesync.export.exporter"},
    "stablesync/enroll/validate.py": {"stablesync.benchmarks.offline_render"},
    "export/int8_real.py": {"stablesync.benchmarks.offline_render", "stablesync.benchmarks.real_faces"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE_OF.get(parts[0], parts[0]), *parts[1:]])


def _sources(folder: str) -> list[Path]:
    """The folder's own modules (not through stablesync/'s links to the other folders)."""
    return sorted(
        p
        for p in (ROOT / folder).rglob("*.py")
        if "__pycache__" not in p.parts and not any(q.is_symlink() for q in p.parents if ROOT in q.parents)
    )


def _imports(path: Path, top_level_only: bool = False) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of each import statement in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                yield node.lineno, ".".join([*base, *([node.module] if node.module else [])])
            elif node.module:
                yield node.lineno, node.module


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _import_each(modules: list[str], banned: tuple[str, ...]) -> None:
    """Imports the modules in turn in a fresh interpreter; fails naming the first whose import
    brought in a banned package."""
    code = (
        "import importlib, json, sys\n"
        "banned = tuple(json.loads(sys.argv[2]))\n"
        "for name in json.loads(sys.argv[1]):\n"
        "    importlib.import_module(name)\n"
        "    bad = sorted({m.split('.')[0] for m in sys.modules} & set(banned))\n"
        "    if bad:\n"
        "        sys.exit(f'importing {name} imported {bad}')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(modules), json.dumps(banned)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_real_time_path_never_imports_torch() -> None:
    modules = [
        _module_name(p)
        for pkg in ("realtime", "export")
        for p in _sources(pkg)
        if _module_name(p) not in TORCH_MODULES
    ]
    assert "stablesync.realtime.pipeline.session" in modules and "stablesync.export.backends.ort" in modules
    _import_each(modules, ("torch",))


# What the real-time install leaves out (pyproject's `train` extra): the live path never needs it.
TRAINING_ONLY = ("torch", "onnx", "safetensors", "tqdm", "onnxscript", "matplotlib", "skimage")
RUNTIME_EXPORT = (
    "stablesync.export",
    "stablesync.export.engine",
    "stablesync.export.manifest",
    "stablesync.export.backends",
    "stablesync.export.backends.ort",
    "stablesync.export.backends.tensorrt_engine",
)


def test_the_real_time_path_needs_no_training_only_package() -> None:
    modules = [*RUNTIME_EXPORT, *(_module_name(p) for p in _sources("realtime"))]
    _import_each(modules, TRAINING_ONLY)


def test_realtime_never_imports_torch_even_lazily() -> None:
    found = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _sources("realtime")
        for line, name in _imports(p)
        if _is(name, "torch")
    ]
    assert not found, found


@pytest.mark.parametrize("module", sorted(TORCH_MODULES))
def test_the_torch_based_export_modules_are_the_ones_listed(module: str) -> None:
    """Each exception is real (it imports torch at top level, or another exception does), so the
    list cannot keep a module that no longer needs torch out of the check above."""
    path = ROOT / (module.replace(".", "/") + ".py")
    names = {name for _, name in _imports(path, top_level_only=True)}
    assert any(_is(n, "torch") or n in TORCH_MODULES for n in names), names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layers_import_one_way(folder: str) -> None:
    breaches = []
    for path in _sources(folder):
        rel = str(path.relative_to(ROOT))
        for line, name in _imports(path):
            if any(_is(name, up) for up in FORBIDDEN[folder]) and name not in KNOWN_BREACHES.get(rel, ()):
                breaches.append(f"{rel}:{line} imports {name}")
    assert not breaches, breaches


@pytest.mark.parametrize("folder", ["stablesync", "tests", *sorted(PACKAGE_OF)])
def test_nothing_imports_the_folders_by_their_bare_names(folder: str) -> None:
    found = [
        f"{p.relative_to(ROOT)}:{line} imports {name}"
        for p in _sources(folder)
        for line, name in _imports(p)
        if any(_is(name, bare) for bare in PACKAGE_OF)
    ]
    assert not found, found


def test_known_breaches_are_still_there() -> None:
    """An entry whose import was removed is removed from the list too."""
    for rel, allowed in KNOWN_BREACHES.items():
        path = ROOT / rel
        names = {name for _, name in _imports(path)} if path.is_file() else set()
        assert allowed <= names, (rel, allowed - names)
