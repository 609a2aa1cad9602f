"""``dvc repro`` for real, in a temporary git repository holding a copy of the project (micro profile)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED = ("pipelines", "stages", "models", "storage", "dvc.yaml", "pyproject.toml")


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dvcrepo")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    params = yaml.safe_load((REPO / "profiles" / "micro.yaml").read_text())
    params["corpus"]["workers"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(root / ".dvc-site"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    _run(["git", "init", "-q"], root, env)
    _run([f"{bindir}/dvc", "init", "-q"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "init"], root, env)
    return root, env


def test_repro_builds_then_does_nothing_then_reruns_on_param_change(dvc_repo) -> None:
    root, env = dvc_repo
    dvc = str(Path(sys.executable).parent / "dvc")
    _run([dvc, "repro"], root, env)
    corpus = root / "data" / "sample_corpus"
    assert (corpus / "corpus.json").is_file()
    assert len(list(corpus.rglob("*.mp4"))) == 5
    assert (root / "data" / "preprocessed" / "manifest.parquet").is_file()
    assert list((root / "data" / "preprocessed" / "shards").glob("train-*.tar"))
    assert (root / "data" / "models" / "contrastive.pt").is_file()
    assert (root / "mlflow.db").is_file()
    second = _run([dvc, "repro"], root, env)
    assert "didn't change, skipping" in second or "Data and pipelines are up to date" in second
    assert "up to date" in _run([dvc, "status"], root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["jpeg_quality"] = 85
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    status = _run([dvc, "status"], root, env)
    assert "preprocess:" in status and "sample_corpus:" not in status, status
    params["preprocess"]["jpeg_quality"] = 90
    params["corpus"]["seed"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    status = _run([dvc, "status"], root, env)
    assert "sample_corpus:" in status and "modified:" in status and "corpus" in status
