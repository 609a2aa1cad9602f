"""The MLflow tracking adapter against a real sqlite-backed MLflow and a real artifact folder.

One store per module (MLflow's first sqlite migration costs seconds). The repository the stages run
in is a tiny git repository in a temporary folder with its own ``dvc.lock`` and ``params.yaml``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from thpad.storage.tracking import (
    PIPELINE_ID_ENV,
    TAG_DVC_INPUTS,
    TAG_DVC_PREFIX,
    TAG_GIT_COMMIT,
    TAG_PARENT_RUN,
    TAG_PIPELINE_ID,
    TAG_STAGE,
    NullRun,
    TrackingConfig,
    TrackingError,
    dvc_input_hashes,
    flatten_params,
    git_commit,
    open_stage_run,
    resolve_tracking_config,
    resume_stage_run,
    retry_transient,
)

REPO = Path(__file__).resolve().parents[2]

DVC_LOCK = """\
schema: '2.0'
stages:
  preprocess:
    cmd: thpad preprocess
    deps:
    - path: data/sample_corpus
      hash: md5
      md5: 0f59466b9515c83b20408601f8f98447.dir
    outs:
    - path: data/shards
      hash: md5
      md5: 11111111111111111111111111111111.dir
  train_contrastive:
    cmd: thpad train-contrastive
    deps:
    - path: data/shards
      hash: md5
      md5: 22222222222222222222222222222222.dir
    - path: pipelines/train/contrastive.py
      hash: md5
      md5: 4eae098461a549ff82cf14d455ae0aec
    params:
      params.yaml:
        train_contrastive.lr: 0.001
"""

# A stage process: open a run from a JSON config, log, print the run id, close.
STAGE_SCRIPT = """\
import json, sys
from thpad.storage.tracking import TrackingConfig, open_stage_run
cfg, stage = TrackingConfig(**json.loads(sys.argv[1])), sys.argv[2]
with open_stage_run(cfg, stage, {"stage": {"name": stage, "lr": 0.001}}) as run:
    run.log_metrics({"loss": 1.0}, step=0)
    print(run.run_id)
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git repository with one commit, a ``dvc.lock`` and a ``params.yaml``."""
    root = tmp_path_factory.mktemp("repo")
    (root / "dvc.lock").write_text(DVC_LOCK)
    (root / "params.yaml").write_text("train_contrastive:\n  lr: 0.001\n")
    git = ["git", "-c", "user.name=thpad", "-c", "user.email=thpad@example.com", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def cfg(tmp_path_factory) -> TrackingConfig:
    """A sqlite store and artifact folder for the module, migrated once."""
    folder = tmp_path_factory.mktemp("mlflow")
    config = TrackingConfig(f"sqlite:///{folder}/mlflow.db", str(folder / "artifacts"), "thpad-test", "")
    MlflowClient(tracking_uri=config.tracking_uri).search_experiments()  # creates the tables once
    return config


@pytest.fixture(scope="module")
def client(cfg) -> MlflowClient:
    """A plain MLflow client to read back what the adapter wrote."""
    return MlflowClient(tracking_uri=cfg.tracking_uri)


def pipeline_runs(client: MlflowClient, pipeline_id: str) -> list:
    """Active parent runs of one pipeline id."""
    experiment = client.get_experiment_by_name("thpad-test")
    query = f"tags.`{TAG_PIPELINE_ID}` = '{pipeline_id}' and tags.`thpad.role` = 'pipeline'"
    return client.search_runs([experiment.experiment_id], query)


def test_two_stage_processes_share_one_parent(cfg, repo, client):
    env = {k: v for k, v in os.environ.items() if k != PIPELINE_ID_ENV}
    env["PYTHONPATH"] = str(REPO)
    fields = json.dumps(cfg.__dict__)  # pipeline_id "" -> derived from the repo's commit and params.yaml
    procs = [
        subprocess.Popen([sys.executable, "-c", STAGE_SCRIPT, fields, stage], cwd=repo, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for stage in ("preprocess", "train_contrastive")
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert all(proc.returncode == 0 for proc in procs), [err for _, err in outputs]
    runs = [client.get_run(out.strip().splitlines()[-1]) for out, _ in outputs]

    pipeline_id = resolve_tracking_config(cfg, repo).pipeline_id
    parents = pipeline_runs(client, pipeline_id)
    assert len(parents) == 1
    assert {run.data.tags[TAG_PARENT_RUN] for run in runs} == {parents[0].info.run_id}
    assert parents[0].info.status == "FINISHED"
    tags = runs[1].data.tags
    assert tags[TAG_STAGE] == "train_contrastive" and tags[TAG_PIPELINE_ID] == pipeline_id
    assert tags[TAG_GIT_COMMIT] == git_commit(repo) != "unknown"
    # data/shards comes from preprocess's outs (current), the code dep from the stage's own entry.
    assert tags[TAG_DVC_PREFIX + "data/shards"] == "11111111111111111111111111111111.dir"
    assert tags[TAG_DVC_PREFIX + "pipelines/train/contrastive.py"] == "4eae098461a549ff82cf14d455ae0aec"
    assert len(tags[TAG_DVC_INPUTS]) == 64
    assert runs[0].data.params == {"stage.name": "preprocess", "stage.lr": "0.001"}


def test_logged_values_read_back(cfg, repo, client, tmp_path):
    cfg = replace(cfg, pipeline_id="readback")
    params = {"model": {"dim": 64, "sizes": [1, 2]}, "note": "x" * 10_000, "empty": {}}
    artifact = tmp_path / "snapshot.txt"
    artifact.write_text("weights")
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    with open_stage_run(cfg, "train_prior", params, tags={"note": "first"}, root=repo) as run:
        for step in range(3):
            run.log_metrics({"loss/total": 1.0 / (step + 1), "lr": 0.1}, step=step * 10)
        run.log_artifact(artifact, "snapshots")
        run.log_dict({"model": {"dim": 64}}, "config.json")
        run.log_figure(fig, "trajectories")
        run.set_tags({"quality": "good"})

    got = client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "train_prior"
    assert got.data.params["model.dim"] == "64" and got.data.params["model.sizes"] == "[1, 2]"
    assert got.data.params["empty"] == "{}"
    assert len(got.data.params["note"]) == 6000 and got.data.params["note"].endswith("[truncated]")
    history = client.get_metric_history(run.run_id, "loss/total")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (10, 0.5), (20, 1.0 / 3)]
    assert got.data.tags["note"] == "first" and got.data.tags["quality"] == "good"
    assert {a.path for a in client.list_artifacts(run.run_id)} == {"snapshots", "config.json", "trajectories.png"}
    folder = Path(client.download_artifacts(run.run_id, "", str(tmp_path / "down")))
    assert (folder / "snapshots" / "snapshot.txt").read_text() == "weights"
    assert json.loads((folder / "config.json").read_text()) == {"model": {"dim": 64}}
    assert (folder / "trajectories.png").read_bytes()[:4] == b"\x89PNG"
    assert Path(cfg.artifact_root) in folder.parents or (Path(cfg.artifact_root) / got.info.run_id).is_dir()


def test_other_pipeline_id_gets_other_parent(cfg, repo, client):
    first = open_stage_run(replace(cfg, pipeline_id="pipe-a"), "evaluate", {}, root=repo)
    second = open_stage_run(replace(cfg, pipeline_id="pipe-b"), "evaluate", {}, root=repo)
    again = open_stage_run(replace(cfg, pipeline_id="pipe-a"), "register", {}, root=repo)
    for run in (first, second, again):
        run.close()
    assert first.parent_run_id != second.parent_run_id
    assert first.parent_run_id == again.parent_run_id
    assert [p.info.run_id for p in pipeline_runs(client, "pipe-b")] == [second.parent_run_id]


def test_pipeline_id_from_environment_then_commit_and_params(repo, monkeypatch):
    cfg = TrackingConfig(tracking_uri="sqlite:///mlflow.db", artifact_root="mlruns", experiment="x", pipeline_id="")
    monkeypatch.setenv(PIPELINE_ID_ENV, "exec-42")
    resolved = resolve_tracking_config(cfg, repo)
    assert resolved.pipeline_id == "exec-42"
    assert resolved.tracking_uri == f"sqlite:///{repo.resolve()}/mlflow.db"
    assert resolved.artifact_root == str(repo.resolve() / "mlruns")
    assert resolve_tracking_config(resolved, "/") == resolved  # idempotent
    monkeypatch.delenv(PIPELINE_ID_ENV)
    derived = resolve_tracking_config(cfg, repo).pipeline_id
    assert len(derived) == 16 and derived == resolve_tracking_config(cfg, repo).pipeline_id
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("0.001", "0.002"))
        assert resolve_tracking_config(cfg, repo).pipeline_id != derived
    finally:
        params.write_text(original)
    with pytest.raises(ValueError, match="pipeline id"):
        resolve_tracking_config(replace(cfg, pipeline_id="it's"), repo)


def test_null_run_does_nothing(cfg, client, tmp_path):
    experiment = client.get_experiment_by_name("thpad-test")
    before = len(client.search_runs([experiment.experiment_id]))
    with NullRun() as run:
        run.log_params({"a": 1})
        run.log_metrics({"loss": 1.0}, step=0)
        run.log_artifact(tmp_path / "missing.txt")
        run.log_dict({"a": 1}, "config.json")
        run.log_figure(Figure(), "fig.png")
        run.set_tags({"a": "b"})
    assert run.run_id == "" and run.closed
    assert len(client.search_runs([experiment.experiment_id])) == before


def test_resume_appends_to_the_same_run(cfg, repo, client):
    cfg = replace(cfg, pipeline_id="resume")
    run = open_stage_run(cfg, "train_disentangle", {"lr": 0.1}, root=repo)
    run.log_metrics({"loss": 2.0}, step=0)
    run.close("KILLED")
    assert client.get_run(run.parent_run_id).info.status == "KILLED"

    resumed = resume_stage_run(cfg, run.run_id, root=repo)
    assert resumed.run_id == run.run_id and resumed.parent_run_id == run.parent_run_id
    assert client.get_run(run.run_id).info.status == "RUNNING"
    resumed.log_params({"lr": 0.1})  # re-logging the same value is allowed
    resumed.log_metrics({"loss": 1.0}, step=1)
    resumed.close()
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "loss")] == [(0, 2.0), (1, 1.0)]
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert client.get_run(run.parent_run_id).info.status == "FINISHED"
    with pytest.raises(TrackingError, match="cannot resume run nosuchrun"):
        resume_stage_run(cfg, "nosuchrun", root=repo)


def test_dvc_input_hashes(repo, tmp_path):
    assert dvc_input_hashes("preprocess", repo / "dvc.lock") == {
        "data/sample_corpus": "0f59466b9515c83b20408601f8f98447.dir"
    }
    assert dvc_input_hashes("evaluate", repo / "dvc.lock") == {}
    assert dvc_input_hashes("preprocess", tmp_path / "dvc.lock") == {}


def test_unreachable_server_is_named(cfg):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    start = time.monotonic()
    with pytest.raises(TrackingError, match=f"{uri} is unreachable"):
        open_stage_run(replace(cfg, tracking_uri=uri, pipeline_id="x"), "evaluate", {})
    assert time.monotonic() - start < 10


def test_unusable_sqlite_store_is_named(cfg, tmp_path):
    (tmp_path / "db").mkdir()  # a folder where the database file should be
    uri = f"sqlite:///{tmp_path}/db"
    with pytest.raises(TrackingError, match=f"cannot use MLflow tracking store {uri}"):
        open_stage_run(replace(cfg, tracking_uri=uri, pipeline_id="x"), "evaluate", {})


def test_transient_errors_are_retried():
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise MlflowException("(sqlite3.OperationalError) database is locked")
        return "ok"

    def invalid() -> str:
        calls.append(1)
        raise MlflowException("bad key")

    assert retry_transient(flaky, base_delay_s=0.01) == "ok" and len(calls) == 3
    with pytest.raises(MlflowException, match="bad key"):
        retry_transient(invalid, base_delay_s=0.01)
    assert len(calls) == 4  # not transient: no retry


def test_flatten_params_keys_and_values():
    flat = flatten_params({"a": {"b": {"c": 1}}, "bad:key?": None, "long": "y" * 7000, "x" * 300: 1})
    assert flat["a.b.c"] == "1" and flat["bad_key_"] == "None"
    assert len(flat["long"]) == 6000
    assert all(len(key) <= 250 for key in flat)
