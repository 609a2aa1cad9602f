"""Session-wide test set-up: keep tool side effects inside temporary folders, and share one small
sample corpus between the tests that read it."""

from __future__ import annotations

import atexit
import dataclasses
import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["tests.bundle_fixtures"]  # the tiny bundle and real generation inputs, once per session

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Tests talk only to the local S3 server they start; fake credentials are set before any Ray worker
# starts, so workers inherit them. aiobotocore breaks on AWS_CONFIG_FILE=/dev/null: use an empty file.
_EMPTY_AWS = Path(tempfile.mkdtemp(prefix="thpad-aws-")) / "empty"
_EMPTY_AWS.write_text("")
atexit.register(shutil.rmtree, _EMPTY_AWS.parent, ignore_errors=True)  # after the session, its workers gone
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": str(_EMPTY_AWS),
                   "AWS_SHARED_CREDENTIALS_FILE": str(_EMPTY_AWS), "AWS_EC2_METADATA_DISABLED": "true"})


@pytest.fixture(scope="session")
def micro_params():
    """The micro profile, loaded strictly."""
    from thpad.stages.params import load_params

    return load_params(REPO / "profiles" / "micro.yaml")


@pytest.fixture(scope="session")
def micro_corpus(tmp_path_factory, micro_params) -> tuple[Path, dict]:
    """A micro sample corpus (5 identities x 1 clip x 2 s), built once per session."""
    from thpad.pipelines.corpus.build import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    cfg = dataclasses.replace(micro_params.corpus, workers=1)
    return out, build_corpus(cfg, out, progress=False)


@pytest.fixture(scope="session")
def ray_head():
    """One local Ray head for the whole session: 127.0.0.1, free ports, 4 logical CPUs, with the dashboard (the
    Jobs API of ``thpad submit``). Its processes are stopped and its temp folder removed at the end."""
    from thpad.pipelines.ray_env import LOCAL_ENV, start_local_head, stop_local_head

    os.environ.update(LOCAL_ENV)  # drivers joining a loopback head need them too (else Ray uses the host IP)
    # 4 logical CPUs on 2 cores: a Ray Data actor that outlives a SIGKILLed driver (the killed-preprocess test)
    # must not leave a 2-worker TorchTrainer waiting for resources for ever.
    head = start_local_head(num_cpus=4)
    yield head
    stop_local_head(head)


@pytest.fixture(scope="session")
def ray_local(ray_head):
    """This process joined to the session's Ray head, for every Ray test."""
    import ray

    from thpad.pipelines.ray_env import RayConfig, ensure_ray

    ensure_ray(RayConfig(address=ray_head.gcs_address, num_cpus=2))
    yield ray
    ray.shutdown()


SLOW_FIXTURES = frozenset({"ray_head", "ray_local"})  # a local Ray: seconds to start, 12-20 s per TorchTrainer fit
SLOW_MODULES = frozenset({"test_dvc.py"})  # dvc repro in a temporary git repository


def pytest_collection_modifyitems(config, items) -> None:
    """Mark the tests that need a local Ray or run ``dvc repro`` as ``slow``: ``make test-quick`` leaves them out."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
