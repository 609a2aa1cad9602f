"""The ``thpad`` command: help everywhere, dry runs print the resolved config, bad params exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stages.cli import app

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
