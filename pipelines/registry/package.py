"""What travels with a logged model besides the bundle: the project's code, staged as one ``thpad/`` folder, and its
runtime requirements, listed explicitly so that MLflow resolves nothing at log time.

The installed ``thpad`` is one namespace over several top-level folders of the repository (``thpad.models`` is
``models/``, and so on; see ``[tool.setuptools.package-dir]`` in pyproject.toml). MLflow's ``code_paths`` copies
folders as they are named, so the code is first gathered into a temporary ``thpad/`` tree built from the imported
packages' ``__path__``: a consumer's ``sys.path`` then gains ``thpad`` and nothing else, which cannot shadow its own
``models`` or ``storage``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import shutil
from pathlib import Path

PACKAGE = "thpad"
SUBPACKAGES = ("models", "pipelines", "stages", "storage")  # the package-dir entries below ``thpad``
SKIP_DIRS = frozenset({"__pycache__", "tests"})


def package_roots() -> dict[str, Path]:
    """Where each part of the ``thpad`` namespace lives: {"" (thpad itself) or subpackage name: folder}."""
    roots = {"": _single_path(PACKAGE)}
    roots.update({name: _single_path(f"{PACKAGE}.{name}") for name in SUBPACKAGES})
    return roots


def _single_path(name: str) -> Path:
    paths = list(importlib.import_module(name).__path__)
    if len(paths) != 1:
        raise RuntimeError(f"{name} spans {len(paths)} folders ({paths}); expected one installed folder")
    return Path(paths[0])


def stage_code(dest: str | os.PathLike) -> Path:
    """Copy the ``thpad`` namespace's Python files into ``dest/thpad`` (no tests, caches or data).

    Args:
        dest: an empty or missing folder (e.g. a temporary one).
    Returns:
        ``dest/thpad``, the folder to pass in ``code_paths``.
    """
    target = Path(dest) / PACKAGE
    for name, root in package_roots().items():
        _copy_python_files(root, target / name if name else target, skip_top=set(SUBPACKAGES) if not name else set())
    return target


def _copy_python_files(root: Path, target: Path, skip_top: set[str]) -> None:
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not (here == root and d in skip_top))
        for file in sorted(f for f in files if f.endswith(".py")):
            out = target / here.relative_to(root) / file
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(here / file, out)


def runtime_requirements(distribution: str = PACKAGE) -> list[str]:
    """The installed distribution's runtime requirements (pyproject's ``dependencies``, no extras), as pip lines."""
    requires = importlib.metadata.requires(distribution) or []
    return [line for line in requires if "extra" not in line.partition(";")[2]]  # the marker names no extra
