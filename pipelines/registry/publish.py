"""Log a bundle folder as the thpad pyfunc model and register it: a new version under a name, with tags, and the
``candidate`` alias moved to it.

Everything goes through an ``MlflowClient`` bound to an explicit tracking URI, never through MLflow's global
tracking URI or active run, so that the stage code stays free of process-wide state. That is why the model is
written with ``mlflow.pyfunc.save_model`` and uploaded as a logged model, the steps ``mlflow.pyfunc.log_model``
takes internally through the fluent API.

What the saved model holds:

- ``python_model``: the path of ``model_code.py`` (MLflow's "models from code"; nothing is pickled);
- ``artifacts``: the bundle folder, verified again (sha256 of every file) when the model loads;
- ``code``: the ``thpad`` namespace's Python files (``package.stage_code``), first on ``sys.path`` at load time;
- the explicit signature (``signature.model_signature``) and pip requirements (``package.runtime_requirements``),
  so neither is inferred: inference would load the bundle and run ``predict`` at log time;
- ``model_config``: the request bounds (``ServingConfig``);
- optionally an input example. With a signature given, ``save_model`` stores the example without running
  ``predict`` (only ``log_model`` validates it as a serving input, which runs ``predict``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH

from thpad.codec import to_dict
from thpad.pipelines.registry.package import runtime_requirements, stage_code
from thpad.pipelines.registry.pyfunc import BUNDLE_ARTIFACT
from thpad.pipelines.registry.requests import ServingConfig
from thpad.pipelines.registry.signature import model_signature
from thpad.storage.tracking import retry_transient, truncate

log = logging.getLogger(__name__)
MODEL_CODE = Path(__file__).with_name("model_code.py")
LOGGED_MODEL_NAME = "thpad"
CANDIDATE = "candidate"
TAG_LOGGED_MODEL = "thpad.logged_model_id"  # the version's logged model (``models:/<id>``)


@dataclass(frozen=True)
class LoggedBundle:
    """A bundle logged as a pyfunc model: its MLflow model id, where its files are, and the run that logged it."""

    model_id: str
    artifact_location: str
    run_id: str

    @property
    def model_uri(self) -> str:
        """``models:/m-...``: loads this logged model, registered or not."""
        return f"models:/{self.model_id}"


def save_bundle_model(bundle: str | os.PathLike, path: str | os.PathLike, serving: ServingConfig,
                      input_example: pd.DataFrame | None = None, mlflow_model: Model | None = None) -> Path:
    """Write the pyfunc model of ``bundle`` to the local folder ``path`` (which must not exist or be empty).

    Args:
        bundle: a bundle folder (``bundle.json`` and the snapshots).
        path: where the MLflow model folder goes.
        serving: the request bounds stored as ``model_config``.
        input_example: a small request (columns ``image``, ``audio``) saved beside the model, or None.
        mlflow_model: the ``Model`` metadata to fill (ids of a logged model), or None for a standalone folder.
    Returns:
        ``path``.
    """
    with tempfile.TemporaryDirectory(prefix="thpad-code-") as tmp:
        mlflow.pyfunc.save_model(
            str(path), python_model=str(MODEL_CODE), artifacts={BUNDLE_ARTIFACT: str(bundle)},
            code_paths=[str(stage_code(tmp))], signature=model_signature(), pip_requirements=runtime_requirements(),
            model_config=to_dict(serving), input_example=input_example, mlflow_model=mlflow_model)
    for cache in sorted(Path(path).rglob("__pycache__")):  # left by MLflow running model_code.py while saving
        shutil.rmtree(cache, ignore_errors=True)
    return Path(path)


def log_bundle_model(client: MlflowClient, run_id: str, bundle: str | os.PathLike,
                     serving: ServingConfig | None = None, input_example: pd.DataFrame | None = None) -> LoggedBundle:
    """Log ``bundle`` as a pyfunc logged model of the run ``run_id`` (in the run's experiment).

    Args:
        client: bound to the tracking store's URI.
        run_id: the run that logs it (the register stage's).
        bundle: a bundle folder.
        serving: the request bounds (None: ``ServingConfig()``).
        input_example: see ``save_bundle_model``.
    Returns:
        The ``LoggedBundle`` that ``register_candidate`` registers.
    """
    serving = serving or ServingConfig()
    experiment_id = retry_transient(lambda: client.get_run(run_id)).info.experiment_id
    model = retry_transient(lambda: client.create_logged_model(experiment_id, name=LOGGED_MODEL_NAME,
                                                                source_run_id=run_id))
    try:
        with tempfile.TemporaryDirectory(prefix="thpad-model-") as tmp:
            meta = Model(artifact_path=model.artifact_location, model_uuid=model.model_id, run_id=run_id,
                         model_id=model.model_id)
            local = save_bundle_model(bundle, Path(tmp) / "model", serving, input_example, meta)
            client.log_model_artifacts(model.model_id, str(local))
        retry_transient(lambda: client.finalize_logged_model(model.model_id, "READY"))
        retry_transient(lambda: client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)]))
    except BaseException:
        with contextlib.suppress(Exception):  # the original error matters more than a failed status update
            client.finalize_logged_model(model.model_id, "FAILED")
        raise
    log.info("logged bundle %s as model %s", bundle, model.model_id)
    return LoggedBundle(model.model_id, model.artifact_location, run_id)


def register_candidate(client: MlflowClient, logged: LoggedBundle, name: str,
                       tags: Mapping[str, object]) -> ModelVersion:
    """Register ``logged`` as a new version of ``name`` (created if missing) with ``tags``, and move the
    ``candidate`` alias to it.

    Args:
        client: bound to the registry's URI.
        logged: what ``log_bundle_model`` returned.
        name: the registered model's name (e.g. ``thpad``).
        tags: version tags (commit, DVC hashes, profile, evaluation fingerprint, headline metrics); values are
            turned into strings, cut to MLflow's limit. ``thpad.logged_model_id`` is added.
    Returns:
        The new ``ModelVersion``.
    """
    try:
        retry_transient(lambda: client.create_registered_model(name))
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":  # already registered: a new version follows
            raise
    return _new_version(client, logged, name, tags)


def _new_version(client: MlflowClient, logged: LoggedBundle, name: str, tags: Mapping[str, object]) -> ModelVersion:
    text = {str(k): truncate(str(v), MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH) for k, v in tags.items()}
    text[TAG_LOGGED_MODEL] = logged.model_id
    # The source is the files' location, not ``models:/m-...``: the registry store would look that URI up through
    # MLflow's global tracking URI instead of this client's (a TODO in its code). The run id is given for the same
    # reason. The sqlite registry then keeps no model id on the version, hence the tag.
    version = retry_transient(lambda: client.create_model_version(
        name, source=logged.artifact_location, run_id=logged.run_id, tags=text, model_id=logged.model_id))
    retry_transient(lambda: client.set_registered_model_alias(name, CANDIDATE, version.version))
    log.info("registered %s version %s; alias %s moved to it", name, version.version, CANDIDATE)
    return version
