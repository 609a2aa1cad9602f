"""The installed package is one namespace, ``thpad``, over the repository's top-level folders: the wheel holds
``thpad/models/...`` and no top-level ``models``, and pyproject lists every sub-package."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.import_graph import package_dirs

REPO = Path(__file__).resolve().parents[1]


def _listed_packages() -> set[str]:
    import tomllib

    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_pyproject_lists_every_package_folder() -> None:
    found = set()
    for package, folder in package_dirs(REPO).items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == _listed_packages(), "add the new sub-package to [tool.setuptools] packages in pyproject.toml"


def test_wheel_installs_one_thpad_namespace(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the repository
    for folder in sorted(set(package_dirs(REPO).values())):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("thpad-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"thpad"}
    assert {"thpad/__init__.py", "thpad/models/diffusion/process.py", "thpad/stages/cli.py",
            "thpad/storage/shards.py", "thpad/pipelines/media/align.py"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "scripts/", "benchmarks/"))]


def test_import_thpad_is_cheap() -> None:
    code = "import sys, thpad; print(thpad.__version__, 'torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/").stdout
    version, torch_loaded, ray_loaded = out.split()
    assert version.count(".") == 2 and torch_loaded == ray_loaded == "False"
