"""Imports run one way: stages -> pipelines -> models, storage. ``models`` imports nothing of ours but the leaf
modules (``thpad.codec``, ``thpad.landmarks``), ``storage`` nothing above itself, and the leaves nothing of ours.
Read with ``ast``, so a lazy import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.import_graph import imported_names, module_file, project_modules

REPO = Path(__file__).resolve().parents[1]
LEAVES = ("thpad.codec", "thpad.landmarks")

# layer -> the layers it may import (itself included); ``thpad`` is the public API, on top of everything.
ALLOWED = {
    "leaf": {"leaf"},
    "models": {"models", "leaf"},
    "storage": {"storage", "leaf"},
    "pipelines": {"pipelines", "models", "storage", "leaf"},
    "stages": {"stages", "pipelines", "models", "storage", "leaf"},
    "api": {"api", "stages", "pipelines", "models", "storage", "leaf"},
}


def layer(module: str) -> str:
    """The layer of a ``thpad`` module: a leaf, one of the four packages, or the API (``thpad`` itself)."""
    if module in LEAVES or module.startswith(tuple(leaf + "." for leaf in LEAVES)):
        return "leaf"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "api"


def wrong_way_imports(root: Path) -> list[str]:
    """``importer -> imported`` for every import of a project module that its layer may not make."""
    found = []
    for name, path in project_modules(root).items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in sorted(imported_names(tree, name, path.name == "__init__.py")):
            # ``thpad`` itself runs first on every import of ours, so importing it names no layer.
            if target.startswith("thpad.") and module_file(root, target) is not None:
                if layer(target) not in ALLOWED[layer(name)]:
                    found.append(f"{name} -> {target}")
    return found


def test_imports_run_one_way() -> None:
    bad = wrong_way_imports(REPO)
    assert not bad, "imports against the layers' direction:\n" + "\n".join(bad)


def test_no_module_imports_the_bare_folders() -> None:
    bare = {"models", "storage", "pipelines", "stages"}
    found = []
    for folder in [REPO / f for f in ("models", "storage", "pipelines", "stages", "thpad", "tests", "scripts",
                                       "benchmarks")]:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in bare]
    assert not found, "import these through thpad.*:\n" + "\n".join(found)


@pytest.mark.parametrize(("importer", "imported", "ok"), [
    ("thpad.models.x", "thpad.codec", True), ("thpad.models.x", "thpad.storage.uri", False),
    ("thpad.storage.x", "thpad.pipelines.y", False), ("thpad.pipelines.x", "thpad.stages.y", False),
    ("thpad.codec", "thpad.models.x", False), ("thpad.stages.x", "thpad.models.y", True),
    ("thpad", "thpad.stages", True),
])
def test_layers_allow_only_downward_imports(importer: str, imported: str, ok: bool) -> None:
    assert (layer(imported) in ALLOWED[layer(importer)]) is ok


def test_checker_finds_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "storage").mkdir()
    (tmp_path / "pyproject.toml").write_text('[tool.setuptools.package-dir]\n"thpad.models" = "models"\n'
                                             '"thpad.storage" = "storage"\n')
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "storage" / "__init__.py").write_text("")
    (tmp_path / "storage" / "io.py").write_text("X = 1\n")
    (tmp_path / "models" / "net.py").write_text("def f():\n    from thpad.storage.io import X\n    return X\n")
    assert wrong_way_imports(tmp_path) == ["thpad.models.net -> thpad.storage.io"]


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """No import cycle and no import error anywhere, including modules no other test imports."""
    names = sorted(project_modules(REPO))
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    run = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, cwd="/")
    assert run.returncode == 0, run.stderr[-3000:]
