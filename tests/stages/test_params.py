"""Strict params loading: unknown and missing keys are errors naming the key; files round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from thpad.codec import ConfigError, to_dict
from thpad.stages.params import Params, load_params

REPO = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("name", ["params.yaml", "profiles/micro.yaml", "profiles/paper.yaml"])
def test_every_committed_profile_loads(name: str) -> None:
    params = load_params(REPO / name)
    assert isinstance(params, Params)
    assert params.profile in {"default", "micro", "paper"}


def test_round_trip(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml")
    again = load_params(_write(tmp_path, to_dict(params)))
    assert again == params


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = to_dict(load_params(REPO / "params.yaml"))
    data["corpus"]["motion"]["yaw_degs"] = 3.0
    with pytest.raises(ConfigError, match=r"unknown config key 'corpus\.motion\.yaw_degs'"):
        load_params(_write(tmp_path, data))


def test_missing_key_is_named(tmp_path: Path) -> None:
    data = to_dict(load_params(REPO / "params.yaml"))
    del data["corpus"]["seconds"]
    with pytest.raises(ConfigError, match=r"missing config key 'corpus\.seconds'"):
        load_params(_write(tmp_path, data))


def test_wrong_type_is_named(tmp_path: Path) -> None:
    data = to_dict(load_params(REPO / "params.yaml"))
    data["corpus"]["clips"] = "four"
    with pytest.raises(ConfigError, match=r"'corpus\.clips'"):
        load_params(_write(tmp_path, data))


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)
