"""Strict params loading: unknown and missing keys are errors naming the key; files round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from thpad.codec import ConfigError
from thpad.stages.params import Params, load_params, params_dict

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
    again = load_params(_write(tmp_path, params_dict(params)))
    assert again == params


def test_unknown_key_is_named(tmp_path: Path) -> None:
    data = params_dict(load_params(REPO / "params.yaml"))
    data["corpus"]["motion"]["yaw_degs"] = 3.0
    with pytest.raises(ConfigError, match=r"unknown config key 'corpus\.motion\.yaw_degs'"):
        load_params(_write(tmp_path, data))


def test_missing_key_is_named(tmp_path: Path) -> None:
    data = params_dict(load_params(REPO / "params.yaml"))
    del data["corpus"]["seconds"]
    with pytest.raises(ConfigError, match=r"missing config key 'corpus\.seconds'"):
        load_params(_write(tmp_path, data))


def test_wrong_type_is_named(tmp_path: Path) -> None:
    data = params_dict(load_params(REPO / "params.yaml"))
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


def test_shared_settings_are_written_once_and_filled_in() -> None:
    params = load_params(REPO / "params.yaml")
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    assert params.train_prior.features == params.train_prior_ar.features == data["paths"]["features"]
    assert params.extract_features.out == data["paths"]["features"]
    assert params.train_disentangle.contrastive == params.train_contrastive.out == data["paths"]["contrastive"]
    assert params.preprocess.source == data["paths"]["corpus"]
    stages = ("train_contrastive", "train_disentangle", "extract_features", "train_prior", "train_prior_ar")
    assert {getattr(params, s).tracking for s in stages} == {params.runtime.tracking}
    assert {getattr(params, s).ray for s in (*stages, "preprocess")} == {params.runtime.ray}
    assert params.corpus.workers == data["runtime"]["workers"]["corpus"]
    text = (REPO / "params.yaml").read_text()
    assert text.count("data/preprocessed") == 1 and text.count("tracking_uri") == 1 and text.count("endpoint_url") == 1


def test_a_shared_key_repeated_in_a_stage_is_refused(tmp_path: Path) -> None:
    data = params_dict(load_params(REPO / "params.yaml"))
    data["train_prior"]["features"] = "elsewhere"
    with pytest.raises(ConfigError, match=r"'train_prior\.features' is written once, as 'paths\.features'"):
        load_params(_write(tmp_path, data))
    data = params_dict(load_params(REPO / "params.yaml"))
    data["extract_features"]["tracking"] = data["runtime"]["tracking"]
    with pytest.raises(ConfigError, match=r"'extract_features\.tracking' is written once, as 'runtime\.tracking'"):
        load_params(_write(tmp_path, data))


def test_no_stage_reads_the_runtime_or_paths_sections_as_dvc_params() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    sections = {entry.split(".")[0] for spec in stages.values() for entry in spec.get("params", [])}
    assert not sections & {"runtime", "paths", "submit"}
    assert sections <= set(params_dict(load_params(REPO / "params.yaml")))
