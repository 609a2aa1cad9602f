"""Session-wide test set-up: keep tool side effects inside temporary folders, and share one small
sample corpus between the tests that read it."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def micro_params():
    """The micro profile, loaded strictly."""
    from storage.params import load_params

    return load_params(REPO / "profiles" / "micro.yaml")


@pytest.fixture(scope="session")
def micro_corpus(tmp_path_factory, micro_params) -> tuple[Path, dict]:
    """A micro sample corpus (5 identities x 1 clip x 2 s), built once per session."""
    from pipelines.corpus.build import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    cfg = dataclasses.replace(micro_params.corpus, workers=1)
    return out, build_corpus(cfg, out, progress=False)
