"""``thpad submit``: stages run as Ray jobs on the session's Ray head (127.0.0.1) through the Jobs API."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import typer
import yaml
from typer.testing import CliRunner

from thpad.pipelines.submit import (
    STAGE_COMMANDS,
    build_package,
    connect,
    follow_job,
    is_excluded,
    job_entrypoint,
    prepare_job,
    resolve_address,
    resolve_stages,
)
from thpad.pipelines.submit_config import DEFAULT_EXCLUDES, SubmitConfig
from thpad.stages.submit import submit

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
app = typer.Typer()
app.command()(submit)  # as stages/cli.py registers it


@app.callback()
def _group() -> None:
    """A group, so that the command is named on the command line as under ``thpad``."""


def _params(tmp_path: Path, **corpus: object) -> Path:
    """The micro profile with the sample corpus written to an absolute path under ``tmp_path``."""
    data = yaml.safe_load((REPO / "profiles" / "micro.yaml").read_text())
    data["paths"]["sample_corpus"] = str(tmp_path / "corpus")
    data["runtime"]["workers"]["corpus"] = 1
    data["corpus"].update({"seconds": 1.0, **corpus})
    path = tmp_path / "job-params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_stages_run_in_dag_order_and_all_is_every_stage() -> None:
    assert resolve_stages(["train_contrastive", "sample_corpus", "train_contrastive"]) == [
        "sample_corpus", "train_contrastive"]
    assert resolve_stages(["all"]) == list(STAGE_COMMANDS)
    with pytest.raises(ValueError, match="unknown stage 'train'.*preprocess"):
        resolve_stages(["train"])
    assert job_entrypoint(["preprocess", "train_prior_ar"]) == (
        "python -m thpad.stages.cli preprocess --params params.yaml && "
        "python -m thpad.stages.cli train-prior-ar --params params.yaml")


def test_address_comes_from_flag_then_params_then_environment() -> None:
    cfg = SubmitConfig(address="http://params:8265")
    env = {"RAY_ADDRESS": "http://env:8265"}
    assert resolve_address("http://flag:8265", cfg, env) == "http://flag:8265"
    assert resolve_address(None, cfg, env) == "http://params:8265"
    assert resolve_address(None, SubmitConfig(), env) == "http://env:8265"
    with pytest.raises(ValueError, match="--address"):
        resolve_address(None, SubmitConfig(), {})


def test_excludes_match_components_and_rooted_paths() -> None:
    assert is_excluded(PurePosixPath("models/__pycache__/x.pyc"), DEFAULT_EXCLUDES)
    assert is_excluded(PurePosixPath("data/sample_corpus"), DEFAULT_EXCLUDES)
    assert not is_excluded(PurePosixPath("pipelines/preprocess/run.py"), DEFAULT_EXCLUDES)
    assert is_excluded(PurePosixPath("docs/big/x.bin"), ("docs/big",))
    assert not is_excluded(PurePosixPath("tests/docs/big"), ("docs/big",))


def test_package_leaves_out_environment_and_data_and_carries_the_params(tmp_path: Path) -> None:
    params = _params(tmp_path)
    pkg = build_package(REPO, params, DEFAULT_EXCLUDES, tmp_path)
    with zipfile.ZipFile(pkg.path) as zf:
        names = zf.namelist()
        assert zf.read("params.yaml") == params.read_bytes()
    tops = {n.split("/")[0] for n in names}
    assert {"thpad", "params.yaml"} <= tops
    assert not tops & {"stages", "pipelines", "models", "storage"}  # stored where the namespace has them
    assert {"thpad/__init__.py", "thpad/stages/cli.py", "thpad/models/diffusion/process.py"} <= set(names)
    assert not tops & {".venv", ".git", ".dvc", "data", "work", "mlruns", "mlflow.db"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert names.count("params.yaml") == 1 and pkg.files == len(names)
    assert pkg.zip_bytes == pkg.path.stat().st_size < 50 * 2**20  # the upload stays small


def test_dry_run_prints_entrypoint_and_runtime_env_without_pip(tmp_path: Path) -> None:
    result = runner.invoke(app, ["submit", "all", "--dry-run", "--params", str(_params(tmp_path))])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["entrypoint"].count("python -m thpad.stages.cli") == len(STAGE_COMMANDS)
    assert "pip" not in plan["runtime_env"] and plan["package"]["zip_bytes"] > 0
    cfg = SubmitConfig(pip=("einops==0.8.1",), env_vars={"A": "1"}, pass_env=("THPAD_X", "THPAD_UNSET"))
    spec = prepare_job(["preprocess"], _params(tmp_path), cfg, REPO, tmp_path, {"THPAD_X": "x"})
    assert spec.runtime_env["pip"] == ["einops==0.8.1"]
    assert spec.runtime_env["env_vars"] == {"A": "1", "THPAD_X": "x"}


def test_no_address_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    result = runner.invoke(app, ["submit", "sample_corpus", "--params", str(_params(tmp_path))])
    assert result.exit_code == 2
    assert "no Ray cluster address" in result.output


def test_submitted_stage_runs_on_the_cluster_and_writes_where_params_say(ray_head, tmp_path: Path) -> None:
    result = runner.invoke(app, ["submit", "sample_corpus", "--address", ray_head.dashboard_url,
                                 "--params", str(_params(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "submitted job raysubmit_" in result.output
    assert f"sample corpus in {tmp_path / 'corpus'}: 5 clips" in result.output  # the stage's own log line
    summary = json.loads((tmp_path / "corpus" / "corpus.json").read_text())
    assert summary["config"]["seconds"] == 1.0
    assert all((tmp_path / "corpus" / clip).is_file() for clip in summary["clips"])


def test_failing_stage_exits_1_with_its_error(ray_head, tmp_path: Path) -> None:
    result = runner.invoke(app, ["submit", "sample_corpus", "--address", ray_head.dashboard_url,
                                 "--params", str(_params(tmp_path, identities=1))])
    assert result.exit_code == 1, result.output
    assert "identities" in result.output  # the stage's error, from the job's logs
    assert "FAILED" in result.output
    assert not (tmp_path / "corpus" / "corpus.json").exists()


def test_job_runs_in_the_uploaded_package(ray_head, tmp_path: Path) -> None:
    """The job's driver and its Ray workers import thpad from the upload (not this checkout), see no .venv
    or data there, and ``ensure_ray`` joins the cluster even when the job sets AWS_* variables."""
    cfg = SubmitConfig(env_vars={"AWS_DEFAULT_REGION": "eu-west-1"})
    spec = prepare_job(["sample_corpus"], _params(tmp_path), cfg, REPO, tmp_path, {})
    probe = ("import importlib, os, ray; import thpad.stages as st; "
             "from thpad.pipelines.ray_env import RayConfig, ensure_ray; "
             "ensure_ray(RayConfig(address='', num_cpus=1)); "
             "print('FILE', st.__file__); print('LS', sorted(os.listdir('.'))); "
             "task = ray.remote(lambda: (importlib.import_module('thpad.stages').__file__, "
             "os.environ['AWS_DEFAULT_REGION'])); "
             "print('WORKER', ray.get(task.remote()))")
    client = connect(ray_head.dashboard_url)
    job_id = client.submit_job(entrypoint=f'python -c "{probe}"', runtime_env=spec.runtime_env)
    lines: list[str] = []
    status = follow_job(client, job_id, lines.append)
    text = "".join(lines)
    assert status.value == "SUCCEEDED", text
    found = {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in text.splitlines()
             if line.split(" ", 1)[0] in ("FILE", "LS", "WORKER")}
    assert "_ray_pkg_" in found["FILE"] and str(REPO) not in found["FILE"]
    assert "_ray_pkg_" in found["WORKER"] and str(REPO) not in found["WORKER"] and "eu-west-1" in found["WORKER"]
    assert "'params.yaml'" in found["LS"] and "'thpad'" in found["LS"] and "'stages'" not in found["LS"]
    assert "'.venv'" not in found["LS"] and "'data'" not in found["LS"]
