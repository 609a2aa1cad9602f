"""``dvc repro`` for real, in a temporary git repository holding a copy of the project (micro profile): every
stage from the raw sample corpus to the trained priors (2-3 steps each), joining the session's Ray head; a second
repro does nothing; ``dvc status`` names exactly the stages a param change reruns; ``dvc exp run -S`` on a prior
param reruns only that prior and what is made from it (the bundle, its evaluation and the demo), and ``dvc exp
show``, ``dvc metrics`` and ``dvc plots`` read the runs' metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COPIED = ("thpad", "pipelines", "stages", "models", "storage", "dvc.yaml", "pyproject.toml")


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory, ray_head) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dvcrepo")
    for name in COPIED:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, root / name)
    params = yaml.safe_load((REPO / "profiles" / "micro.yaml").read_text())
    params["runtime"]["workers"]["corpus"] = 1
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ["PATH"], "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(root / ".dvc-site"), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "RAY_ADDRESS": ray_head.gcs_address,  # every stage joins the session's Ray head
           "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5"}
    _run(["git", "init", "-q"], root, env)
    _run([f"{bindir}/dvc", "init", "-q"], root, env)
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "init"], root, env)
    return root, env


STAGES = ("sample_corpus", "preprocess", "train_contrastive", "train_disentangle", "extract_features", "train_prior",
          "train_prior_ar", "bundle", "evaluate", "demo")


def _changed_stages(status: str) -> set[str]:
    """Stage names that ``dvc status`` lists as changed (lines ``name:`` at the start)."""
    return {line[:-1] for line in status.splitlines() if line.endswith(":") and line[:-1] in STAGES}


def _set_param(root: Path, section: str, dotted: str, value: object) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    node = params[section]
    *parents, leaf = dotted.split(".")
    for name in parents:
        node = node[name]
    node[leaf] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def test_repro_builds_then_does_nothing_then_reruns_on_param_change(dvc_repo) -> None:
    root, env = dvc_repo
    dvc = str(Path(sys.executable).parent / "dvc")
    _run([dvc, "repro"], root, env)
    corpus = root / "data" / "sample_corpus"
    assert (corpus / "corpus.json").is_file()
    assert len(list(corpus.rglob("*.mp4"))) == 5
    assert (root / "data" / "preprocessed" / "manifest.parquet").is_file()
    assert list((root / "data" / "preprocessed" / "shards").glob("train-*.tar"))
    for model in ("contrastive", "disentangle", "prior", "prior_ar"):
        assert (root / "data" / "models" / f"{model}.pt").is_file(), model
    assert list((root / "data" / "features" / "train").glob("*.parquet"))
    assert (root / "data" / "features" / "info.json").is_file()
    assert (root / "mlflow.db").is_file()
    assert (root / "data" / "bundle" / "bundle.json").is_file()
    demo = root / "data" / "demo"
    assert {"samples.mp4", "keyframe.mp4", "reenacted.mp4", "strip.png", "index.json"} <= {p.name for p in
                                                                                          demo.iterdir()}
    assert (root / "metrics" / "evaluate.json").is_file() and (root / "data" / "evaluate" / "report.html").is_file()
    second = _run([dvc, "repro"], root, env)
    assert "didn't change, skipping" in second or "Data and pipelines are up to date" in second
    assert "up to date" in _run([dvc, "status"], root, env)
    _set_param(root, "preprocess", "jpeg_quality", 85)
    assert _changed_stages(_run([dvc, "status"], root, env)) == {"preprocess"}
    _set_param(root, "preprocess", "jpeg_quality", 90)
    _set_param(root, "train_disentangle", "schedule.lr", 0.002)
    assert _changed_stages(_run([dvc, "status"], root, env)) == {"train_disentangle"}
    _set_param(root, "train_disentangle", "schedule.lr", 0.001)
    _set_param(root, "train_prior", "validation.num_steps", 7)  # the validated sampling defaults: prior and bundle
    assert _changed_stages(_run([dvc, "status"], root, env)) == {"train_prior", "bundle"}
    _set_param(root, "train_prior", "validation.num_steps", 5)
    _set_param(root, "evaluate", "seeds", 3)  # the evaluation's own params rerun it alone
    assert _changed_stages(_run([dvc, "status"], root, env)) == {"evaluate"}
    _set_param(root, "evaluate", "seeds", 2)
    _set_param(root, "corpus", "seed", 1)
    status = _run([dvc, "status"], root, env)
    assert "sample_corpus:" in status and "modified:" in status and "corpus" in status
    _set_param(root, "corpus", "seed", 0)
    assert "up to date" in _run([dvc, "status"], root, env)
    _set_param(root, "runtime", "tracking.experiment", "elsewhere")  # runtime changes no result: nothing reruns
    _set_param(root, "runtime", "workers.preprocess", 1)
    assert "up to date" in _run([dvc, "status"], root, env)


def test_exp_run_on_a_prior_param_reruns_only_that_prior(dvc_repo) -> None:
    root, env = dvc_repo
    dvc = str(Path(sys.executable).parent / "dvc")
    _run([dvc, "repro"], root, env)  # no-op after the test above; builds everything when run alone
    _run(["git", "add", "-A"], root, env)
    _run(["git", "commit", "-qm", "pipeline ran"], root, env)
    out = _run([dvc, "exp", "run", "-S", "train_prior.schedule.lr=0.002"], root, env)
    ran = {name for name in STAGES if f"Running stage '{name}'" in out}
    assert ran == {"train_prior", "bundle", "evaluate", "demo"}, out  # all made from the prior
    shown = json.loads(_run([dvc, "exp", "show", "--json"], root, env))
    metrics = [json.dumps(row) for row in shown]
    assert any("table1" in m and "evaluate.json" in m for m in metrics), shown  # evaluate's keys, both runs
    assert any("train_prior.json" in m and "guided" in m for m in metrics), shown  # the training stages' too
    diff = _run([dvc, "metrics", "diff", "HEAD"], root, env)  # the workspace (the experiment) against the commit
    assert "table1" in diff, diff
    plots = _run([dvc, "plots", "show", "--json"], root, env)
    assert "plots/evaluate/table1.csv" in plots
