"""Every training stage keeps its validation settings under one name, ``validation``, outside its run key: a
validation-only change resumes the trained state, a training change starts fresh."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from thpad.codec import to_dict
from thpad.pipelines.train.harness import run_key
from thpad.stages.params import load_params

REPO = Path(__file__).resolve().parents[3]
STAGES = ("train_contrastive", "train_disentangle", "train_prior", "train_prior_ar")


def _changed_validation(cfg):
    v = cfg.validation
    first = dataclasses.fields(v)[0].name  # an int in every stage's validation block
    return dataclasses.replace(cfg, validation=dataclasses.replace(v, **{first: getattr(v, first) + 1}))


@pytest.mark.parametrize("stage", STAGES)
def test_a_validation_only_change_keeps_the_run_key(stage: str) -> None:
    cfg = getattr(load_params(REPO / "params.yaml"), stage)
    key = run_key(to_dict(cfg), {"inputs": "a"})
    assert run_key(to_dict(_changed_validation(cfg)), {"inputs": "a"}) == key
    seeded = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, seed=cfg.schedule.seed + 1))
    assert run_key(to_dict(seeded), {"inputs": "a"}) != key


def test_no_training_section_has_a_validation_block_by_another_name() -> None:
    params = load_params(REPO / "params.yaml")
    for stage in STAGES:
        names = {f.name for f in dataclasses.fields(getattr(params, stage))}
        assert "validation" in names and not names & {"val", "eval", "evaluation"}, stage
