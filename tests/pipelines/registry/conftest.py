"""One registered model per test session: the tiny bundle logged as the thpad pyfunc into a sqlite MLflow store in a
temporary folder, registered with tags and alias ``candidate``; plus the model loaded in this process."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from thpad.pipelines.registry.publish import LoggedBundle

NAME = "thpad-test"
TAGS = {"thpad.git_commit": "0123abc", "thpad.profile": "micro", "thpad.metric.snd": 2.4758}


@dataclass(frozen=True)
class Registered:
    """Where the session's registered model lives."""

    tracking_uri: str
    name: str
    version: str
    logged: LoggedBundle
    local_path: Path  # the logged model's folder in the local artifact store


def request_frame(image: Path, audio: Path, **columns: list) -> pd.DataFrame:
    """A one-row request with the files' bytes (and any further columns)."""
    return pd.DataFrame({"image": [image.read_bytes()], "audio": [audio.read_bytes()], **columns})


def trap_uri(folder: Path) -> str:
    """An empty store that MLflow's global tracking URI points at while the code under test runs: the code passes
    its URI explicitly, and anything that fell back on the global one would find nothing there (and would never
    touch a ``mlflow.db`` in the working folder, MLflow's default)."""
    return f"sqlite:///{folder.resolve() / 'global-trap.db'}"


@pytest.fixture(autouse=True)
def global_tracking_trap(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", trap_uri(tmp_path))


@pytest.fixture(scope="session")
def registered(tmp_path_factory, tiny_bundle, portrait_path, speech_path) -> Registered:
    from mlflow.tracking import MlflowClient

    from thpad.pipelines.registry.publish import log_bundle_model, register_candidate

    root = tmp_path_factory.mktemp("registry").resolve()
    uri = f"sqlite:///{root / 'mlflow.db'}"  # absolute: the subprocess and the server run elsewhere
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trap_uri(root))
        client = MlflowClient(uri)
        experiment = client.create_experiment("thpad", artifact_location=str(root / "mlruns"))
        run = client.create_run(experiment)
        logged = log_bundle_model(client, run.info.run_id, tiny_bundle,
                                  input_example=request_frame(portrait_path, speech_path))
        version = register_candidate(client, logged, NAME, TAGS)
        client.set_terminated(run.info.run_id)
    return Registered(uri, NAME, str(version.version), logged, Path(logged.artifact_location))


@pytest.fixture(scope="session")
def pyfunc_model(registered):
    """The registered model loaded in this process from its folder. MLflow puts the model's ``code`` folder first
    on ``sys.path`` for good; it is put back afterwards so that later tests import the repository's files."""
    import mlflow.pyfunc

    import thpad.pipelines.generate.model  # noqa: F401  (imported from the repository before the model's copy)

    saved = list(sys.path)
    try:
        return mlflow.pyfunc.load_model(str(registered.local_path))
    finally:
        sys.path[:] = saved
