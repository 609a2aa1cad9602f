"""The ``thpad`` command: help everywhere, dry runs print the resolved config, bad params exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from thpad.stages.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_console_script_help() -> None:
    exe = Path(sys.executable).parent / "thpad"
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0
    assert "sample-corpus" in proc.stdout


@pytest.mark.parametrize("command", sorted(c.name for c in app.registered_commands))
def test_every_subcommand_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_sample_corpus_dry_run_applies_flags(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample-corpus", str(tmp_path / "c"), "--dry-run", "--clips", "7",
                                 "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 0, result.output
    resolved = json.loads(result.stdout)
    assert resolved["clips"] == 7
    assert resolved["identities"] == 10
    assert not (tmp_path / "c").exists()


def test_params_command_prints_profile() -> None:
    result = runner.invoke(app, ["params", "--params", str(REPO / "profiles" / "micro.yaml")])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["profile"] == "micro"


def test_bad_params_exit_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text((REPO / "params.yaml").read_text().replace("  clips: 4", "  clipz: 4"))
    result = runner.invoke(app, ["sample-corpus", "--dry-run", "--params", str(bad)])
    assert result.exit_code == 2
    assert "corpus.clipz" in result.output


def test_too_few_identities_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample-corpus", str(tmp_path / "c"), "--identities", "1",
                                 "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 2
    assert "empty" in result.output


def test_models_json_paper_preset() -> None:
    result = runner.invoke(app, ["models", "--preset", "paper", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert list(summary) == ["identity_encoder", "visual_encoder", "audio_encoder", "generator",
                             "discriminator", "prior", "ar_prior"]
    assert summary["identity_encoder"]["outputs"] == {"f_id": [1, 2048], "id_map": [1, 512, 7, 7]}
    assert summary["visual_encoder"]["outputs"]["f_nl"] == [1, 42]
    assert summary["generator"]["inputs"]["style"] == [1, 2560]
    assert summary["generator"]["outputs"]["image"] == [1, 3, 224, 224]
    assert summary["prior"]["outputs"]["x0"] == [1, 128, 42]
    assert all(info["params"] > 0 for info in summary.values())


def test_models_table_tiny() -> None:
    result = runner.invoke(app, ["models", "--preset", "tiny"])
    assert result.exit_code == 0
    assert result.stdout.count("\n| ") == 8  # header separator + 7 modules
    assert runner.invoke(app, ["models", "--preset", "huge"]).exit_code == 2


def test_preprocess_dry_run_and_strict(micro_corpus, ray_local, tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "corpus"
    shutil.copytree(micro_corpus[0], src)
    empty = src / "test" / "mp4" / "id99999" / "emptyvideo0" / "00001.mp4"
    empty.parent.mkdir(parents=True)
    empty.write_bytes(b"")
    params = str(REPO / "profiles" / "micro.yaml")
    dry = runner.invoke(app, ["preprocess", str(src), str(tmp_path / "out"), "--dry-run", "--params", params])
    assert dry.exit_code == 0 and json.loads(dry.stdout)["source"] == str(src)
    result = runner.invoke(app, ["preprocess", str(src), str(tmp_path / "out"), "--strict", "--params", params])
    assert result.exit_code == 3, result.output
    assert "5 accepted, 1 refused" in result.stdout and "empty file" in result.stdout
    again = runner.invoke(app, ["preprocess", str(src), str(tmp_path / "out"), "--params", params])
    assert again.exit_code == 0 and "resumed" in again.stdout


def test_train_contrastive_without_data_is_a_clear_error(tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "profiles" / "micro.yaml").read_text())
    params["paths"]["preprocessed"] = str(tmp_path / "nothing-here")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = runner.invoke(app, ["train-contrastive", "--params", str(path)])
    assert result.exit_code == 2
    assert "no preprocessed data" in result.output and "nothing-here" in result.output


@pytest.mark.parametrize(("command", "section"), [("train-prior", "train_prior"), ("train-prior-ar", "train_prior_ar")])
def test_prior_stages_refuse_missing_features_naming_the_param(command: str, section: str, tmp_path: Path) -> None:
    params = yaml.safe_load((REPO / "profiles" / "micro.yaml").read_text())
    params["paths"]["features"] = str(tmp_path / "no-features")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    result = runner.invoke(app, [command, "--params", str(path)])
    assert result.exit_code == 2, result.output
    assert "paths.features" in result.output and "no-features" in result.output
