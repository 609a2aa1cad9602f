"""Guards ``dvc.yaml``'s ``deps``: each stage must list every project source file its command imports, so that
editing one of them makes ``dvc repro`` rerun the stage. Pure ``ast``: nothing is imported, so it runs in
milliseconds.

The rules the checker applies:

- A stage's ``cmd`` is ``thpad <command> ...``; ``stages/cli.py`` (the ``thpad`` script, see pyproject.toml)
  maps ``<command>`` to its entry module in its ``COMMANDS`` table, and that module must be ``stages/<stage>.py``.
  ``cli.py`` itself is not followed: it is dispatch only and imports every stage, so following it would make
  every stage depend on everything.
- From the entry module, imports are followed transitively within the project's own packages (``thpad.*``, mapped
  onto the top-level folders by pyproject's package-dir; see ``tests/import_graph.py``). ``import a.b`` and
  ``from a.b import c`` both count, ``a.b.c`` counting too
  when it is a module; relative imports are resolved; imports inside functions count as well.
- One boundary: ``stages/params.py``, the strict loader, imports the config class of every params section so that
  it can validate the whole of ``params.yaml``. ``dvc.yaml`` already scopes each stage to the params sections it
  reads (its ``params:``), so from that module only the config classes of the stage's own sections are followed;
  the other sections' config modules (and all they import) are not the stage's deps.
- Imports under ``if TYPE_CHECKING:`` are skipped: they never run, so they cannot change a stage's behaviour.
- Importing ``a.b.c`` runs ``a/__init__.py`` and ``a/b/__init__.py``. A package ``__init__.py`` is required in
  ``deps`` only if it holds more than a docstring and ``from __future__`` imports (a docstring-only one runs no
  code); the modules its body imports are followed either way, but not the imports inside its functions (they run
  only when called, and code that calls them imports what it needs itself).
- A file is covered when it equals a dep or lies under a dep folder; templated ``${...}`` deps are data and are
  ignored.
"""

from __future__ import annotations

import ast
import shlex
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
import yaml

from tests.import_graph import import_closure, module_file

REPO = Path(__file__).resolve().parents[1]
CLI_MODULE = "thpad.stages.cli"
PARAMS_MODULE = "thpad.stages.params"
PARAMS_CLASS = "Params"
SCRIPT = "thpad"


def _load_stages(root: Path) -> dict[str, dict]:
    return yaml.safe_load((root / "dvc.yaml").read_text())["stages"]


STAGES = _load_stages(REPO)


def _is_inert_init(path: Path) -> bool:
    """True for an ``__init__.py`` holding only a docstring and ``from __future__`` imports."""
    if path.name != "__init__.py":
        return False
    for stmt in ast.parse(path.read_text()).body:
        is_docstring = isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)
        is_future = isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"
        if not (is_docstring or is_future):
            return False
    return True


def source_deps(deps: Iterable[str]) -> list[str]:
    """The deps that are project paths; templated ``${...}`` data paths are dropped."""
    return [dep.rstrip("/") for dep in deps if "${" not in dep]


def is_covered(rel: str, deps: Iterable[str]) -> bool:
    """Whether repo-relative file ``rel`` equals a dep or lies under a dep folder."""
    return any(rel == dep or rel.startswith(dep + "/") for dep in deps)


def missing_deps(root: Path, entry: str, deps: Iterable[str],
                 unfollowed: Mapping[str, frozenset[str]] | None = None) -> list[str]:
    """Repo-relative files that importing ``entry`` runs (see ``import_closure``) but no dep covers, sorted."""
    listed = source_deps(deps)
    files = {path.relative_to(root).as_posix() for path in import_closure(root, entry, unfollowed).values()
             if not _is_inert_init(path)}
    return sorted(rel for rel in files if not is_covered(rel, listed))


def other_sections_configs(root: Path, sections: Iterable[str]) -> frozenset[str]:
    """Type names of the ``Params`` fields in ``storage/params.py`` outside ``sections``: the config classes of
    params sections a stage does not read."""
    tree = ast.parse(module_file(root, PARAMS_MODULE).read_text())
    params = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == PARAMS_CLASS)
    return frozenset(stmt.annotation.id for stmt in params.body
                     if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                     and isinstance(stmt.annotation, ast.Name) and stmt.target.id not in set(sections))


def stage_unfollowed(root: Path, stage: dict) -> dict[str, frozenset[str]]:
    """The params loader's imports of config classes for sections the stage's ``params:`` does not list."""
    sections = {entry.split(".")[0] for entry in stage.get("params", []) if isinstance(entry, str)}
    return {PARAMS_MODULE: other_sections_configs(root, sections)}


def cli_command_modules(root: Path) -> dict[str, str]:
    """``thpad`` subcommand -> module defining its function, read from the ``COMMANDS`` table of ``stages/cli.py``
    (subcommand -> (module below ``thpad.stages``, function))."""
    tree = ast.parse(module_file(root, CLI_MODULE).read_text())
    table = next(node.value for node in ast.walk(tree) if isinstance(node, ast.AnnAssign)
                 and isinstance(node.target, ast.Name) and node.target.id == "COMMANDS")
    return {name: f"thpad.stages.{module}" for name, (module, _) in ast.literal_eval(table).items()}


def entry_module(root: Path, cmd: str) -> str:
    """The module whose function ``cmd`` (``thpad <command> ...``) runs."""
    script, command = shlex.split(cmd)[:2]
    assert script == SCRIPT, f"cmd does not run {SCRIPT}: {cmd}"
    return cli_command_modules(root)[command]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_cmd_runs_its_own_stages_module(stage: str) -> None:
    assert entry_module(REPO, STAGES[stage]["cmd"]) == f"thpad.stages.{stage}"
    assert (REPO / "stages" / f"{stage}.py").is_file()


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_imported_source_file(stage: str) -> None:
    spec = STAGES[stage]
    missing = missing_deps(REPO, f"thpad.stages.{stage}", spec.get("deps", []), stage_unfollowed(REPO, spec))
    assert not missing, (f"dvc.yaml stage {stage!r} imports files its deps do not cover; add to its deps:\n"
                         + "\n".join(f"  - {rel}" for rel in missing))


def test_params_boundary_keeps_only_the_stages_own_sections() -> None:
    skipped = stage_unfollowed(REPO, STAGES["train_prior"])[PARAMS_MODULE]
    assert {"CorpusConfig", "ContrastiveConfig"} <= skipped
    assert "PriorConfig" not in skipped


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_checker_reports_an_unlisted_import(tmp_path: Path) -> None:
    _write(tmp_path, {
        "stages/__init__.py": '"""Docstring only: not required."""\n',
        "stages/demo.py": "from lib.core import run\n\n\ndef main() -> None:\n    from lib import late\n",
        "lib/__init__.py": '"""Docstring only."""\nfrom __future__ import annotations\n',
        "lib/core.py": "from typing import TYPE_CHECKING\n\nfrom .helpers import util\n\n"
                       "if TYPE_CHECKING:\n    import lib.typed_only\n\n\ndef run() -> None: ...\n",
        "lib/helpers/__init__.py": "from lib.helpers.util import X\n",
        "lib/helpers/util.py": "X = 1\n",
        "lib/late.py": "",
        "lib/typed_only.py": "",
        "notpkg/unused.py": "",
    })
    assert missing_deps(tmp_path, "stages.demo", ["stages/demo.py", "lib/core.py"]) == [
        "lib/helpers/__init__.py", "lib/helpers/util.py", "lib/late.py"]
    assert missing_deps(tmp_path, "stages.demo", ["${data.path}", "stages", "lib/core.py", "lib/helpers/",
                                                  "lib/late.py"]) == []


def test_checker_does_not_follow_unfollowed_imports(tmp_path: Path) -> None:
    _write(tmp_path, {
        "stages/__init__.py": "",
        "stages/demo.py": "import conf.loader\n",
        "conf/__init__.py": "",
        "conf/loader.py": "from conf.mine import MineConfig\nfrom conf.other import OtherConfig\n",
        "conf/mine.py": "class MineConfig: ...\n",
        "conf/other.py": "class OtherConfig: ...\n",
    })
    deps = ["stages/demo.py", "conf/loader.py"]
    assert missing_deps(tmp_path, "stages.demo", deps) == ["conf/mine.py", "conf/other.py"]
    assert missing_deps(tmp_path, "stages.demo", deps, {"conf.loader": frozenset({"OtherConfig"})}) == ["conf/mine.py"]


def test_a_packages_function_imports_are_not_followed(tmp_path: Path) -> None:
    _write(tmp_path, {
        "stages/__init__.py": "",
        "stages/demo.py": "from lib.core import run\n",
        "lib/__init__.py": "def load():\n    from lib import heavy\n",
        "lib/core.py": "def run() -> None: ...\n",
        "lib/heavy.py": "",
    })
    assert missing_deps(tmp_path, "stages.demo", ["stages/demo.py", "lib/core.py"]) == ["lib/__init__.py"]
