"""The project's import graph, read with ``ast`` (nothing is imported): which file defines a module, what a module
imports at run time, and everything importing one module runs. Shared by the DVC deps check and the
import-direction check.

Module names map onto files through ``[tool.setuptools.package-dir]`` in ``pyproject.toml`` (``thpad.models.x`` is
``models/x.py``); a tree without that table (the tests' synthetic trees) maps ``a.b`` onto ``a/b.py``.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path


@cache
def package_dirs(root: Path) -> dict[str, str]:
    """``[tool.setuptools.package-dir]`` of ``root/pyproject.toml`` (package -> folder), or {} without one."""
    pyproject = root / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    return tomllib.loads(pyproject.read_text()).get("tool", {}).get("setuptools", {}).get("package-dir", {})


def project_packages(root: Path) -> frozenset[str]:
    """Top-level packages of the project: the folders at ``root`` holding an ``__init__.py``, or the top-level
    names of the package-dir table where there is one."""
    mapped = package_dirs(root)
    if mapped:
        return frozenset(name.split(".")[0] for name in mapped)
    return frozenset(init.parent.name for init in root.glob("*/__init__.py"))


def module_base(root: Path, dotted: str) -> Path:
    """Where module ``dotted`` would live, without its suffix: the package-dir entry with the longest matching
    prefix maps the head, the rest of the name becomes folders."""
    mapped = package_dirs(root)
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        head = ".".join(parts[:end])
        if head in mapped:
            return root.joinpath(mapped[head], *parts[end:])
    return root.joinpath(*parts)


def module_file(root: Path, dotted: str) -> Path | None:
    """The file defining module ``dotted`` under ``root`` (a package wins over a same-named module), or None."""
    base = module_base(root, dotted)
    for candidate in (base / "__init__.py", base.with_name(base.name + ".py")):
        if candidate.is_file():
            return candidate
    return None


def project_modules(root: Path) -> dict[str, Path]:
    """Every module of the project's packages (dotted name -> file)."""
    found: dict[str, Path] = {}
    for package, folder in package_dirs(root).items():
        for path in sorted((root / folder).rglob("*.py")):
            rel = path.relative_to(root / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if module_file(root, name) == path:  # a nested folder mapped as its own package is counted there
                found[name] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _runtime_nodes(tree: ast.AST, body_only: bool = False) -> Iterator[ast.AST]:
    """Like ``ast.walk``, but without the bodies of ``if TYPE_CHECKING:`` blocks (their ``else`` is kept), and with
    ``body_only`` without function bodies either (what running the module itself runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
        elif not (body_only and isinstance(node, FUNCTIONS)):
            stack.extend(ast.iter_child_nodes(node))


def _from_base(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute module a ``from ... import`` statement in ``module`` imports from."""
    if node.level == 0:
        return node.module or ""
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def imported_names(tree: ast.Module, module: str, is_package: bool,
                   skip: frozenset[str] = frozenset(), body_only: bool = False) -> set[str]:
    """Dotted names a module may import at run time: imported modules, plus ``base.name`` for each
    ``from base import name`` (a module only when such a file exists). Imported names in ``skip`` are left out,
    and so is a ``from`` statement importing nothing else. ``body_only``: only what running the module's body
    imports (not the imports inside its functions)."""
    names: set[str] = set()
    for node in _runtime_nodes(tree, body_only):
        if isinstance(node, ast.Import | ast.ImportFrom):
            kept = [alias.name for alias in node.names if alias.name not in skip]
            if isinstance(node, ast.Import):
                names.update(kept)
            elif kept:
                base = _from_base(node, module, is_package)
                names.add(base)
                names.update(f"{base}.{name}" for name in kept if name != "*")
    return names


def _with_parents(dotted: str) -> Iterator[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its parent packages first."""
    parts = dotted.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def import_closure(root: Path, entry: str, unfollowed: Mapping[str, frozenset[str]] | None = None) -> dict[str, Path]:
    """Every project module (dotted name -> file) that importing ``entry`` runs, ``entry`` included, except
    what only the imports named in ``unfollowed`` (module -> imported names) would bring in.

    Importing a package runs its ``__init__.py``'s body, not its functions, so a package's imports are followed
    only from its body (``thpad.load`` imports generation inside the function: importing ``thpad.codec`` does not
    run it). Code that calls such a function imports what it needs itself, and that import is followed.
    """
    unfollowed = unfollowed or {}
    packages = project_packages(root)
    found: dict[str, Path] = {}
    todo = list(_with_parents(entry))
    while todo:
        module = todo.pop()
        path = None if module in found else module_file(root, module)
        if path is None or module.split(".")[0] not in packages:
            continue
        found[module] = path
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = unfollowed.get(module, frozenset())
        is_package = path.name == "__init__.py"
        for name in imported_names(tree, module, is_package, skip, body_only=is_package):
            todo.extend(_with_parents(name))
    return found
