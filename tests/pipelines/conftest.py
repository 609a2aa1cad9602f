"""Fixtures shared by the training and feature-extraction tests: the micro corpus preprocessed once per session,
and Ray Train's controller polling its workers often (it reads the variable at each fit)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator

import pytest

from thpad.storage.uri import Storage


@pytest.fixture(scope="session")
def shards(micro_corpus, micro_params, ray_local, tmp_path_factory) -> Iterator[str]:
    """The micro corpus preprocessed once (3 train clips in 2 shards, 1 val clip, 1 test clip)."""
    from thpad.pipelines.preprocess.run import run_preprocess

    out = tmp_path_factory.mktemp("train_pre") / "out"
    run_preprocess(dataclasses.replace(micro_params.preprocess, source=str(micro_corpus[0]), out=str(out)), Storage())
    previous = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"  # the default 2 s delays every checkpoint
    yield str(out)
    if previous is None:
        os.environ.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)
    else:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = previous
