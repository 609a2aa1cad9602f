"""The MLflow tracking adapter: one MLflow run per DVC stage, nested under one parent run per pipeline.

Each DVC stage is its own process, so the parent run is never held in memory: it is found (or
created) by its ``thpad.pipeline_id`` tag. A stage run carries the stage name, the git commit and the
DVC hashes of the stage's inputs as tags, its resolved params (flattened to dotted keys), metrics
by step and artifacts. Every call goes through an ``MlflowClient`` bound to an explicit tracking URI
(no global ``mlflow.set_tracking_uri``), so several stage processes, or a training worker, can log
into the same store. Only rank 0 logs; other ranks get a ``NullRun``.

Pipeline id (``TrackingConfig.pipeline_id = ""``): ``$THPAD_PIPELINE_ID`` when set, else a hash of
the git commit and the content of ``params.yaml``. Both are fixed while ``dvc repro`` runs (unlike
``dvc.lock``, which DVC rewrites after every stage), so all stages of one run share a parent, and a
``dvc exp run -S ...`` gets a parent of its own. Two executions with the same commit and params share
a parent too (a retried pipeline continues under it); export ``THPAD_PIPELINE_ID`` (e.g. a
timestamp) to get one parent per execution instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import sqlite3
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.validation import (
    MAX_ENTITY_KEY_LENGTH,
    MAX_METRICS_PER_BATCH,
    MAX_PARAM_VAL_LENGTH,
    MAX_PARAMS_TAGS_PER_BATCH,
    MAX_TAG_VAL_LENGTH,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

PIPELINE_ID_ENV = "THPAD_PIPELINE_ID"
TAG_PIPELINE_ID = "thpad.pipeline_id"
TAG_ROLE = "thpad.role"  # "pipeline" for the parent run, "stage" for a stage run
TAG_STAGE = "thpad.stage"
TAG_GIT_COMMIT = "thpad.git_commit"
TAG_DVC_PREFIX = "thpad.dvc."  # one tag per input path: thpad.dvc.<path> = md5
TAG_DVC_INPUTS = "thpad.dvc_inputs"  # one hash over all input hashes, for searching
TAG_PARENT_RUN = "mlflow.parentRunId"  # what the MLflow UI nests by
TAG_MLFLOW_COMMIT = "mlflow.source.git.commit"
TRUNCATED = "...[truncated]"
PROBE_TIMEOUT_S = 5.0
LOCK_RETRIES = 8
_PIPELINE_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class TrackingError(RuntimeError):
    """The tracking store cannot be reached or used; the message names the tracking URI."""


@dataclass(frozen=True)
class TrackingConfig:
    """Where runs go: the tracking store, the experiment and its artifact root, and the pipeline id."""

    tracking_uri: str = "sqlite:///mlflow.db"  # relative sqlite paths are relative to the repository (cwd)
    artifact_root: str = "mlruns"  # local folder or s3:// URI, used when the experiment is created; "" = store's
    experiment: str = "thpad"
    pipeline_id: str = ""  # "" = $THPAD_PIPELINE_ID, else hash(git commit, params.yaml)


# ----------------------------------------------------------------------------- configuration


def resolve_tracking_config(cfg: TrackingConfig, root: str | Path | None = None) -> TrackingConfig:
    """Make ``cfg`` independent of the working folder: absolute sqlite and artifact paths, a pipeline id.

    Call it in the stage process (the repository root) before handing the config to Ray workers,
    whose working folder and environment may differ. Resolving twice changes nothing.

    Args:
        cfg: the configured tracking settings.
        root: the repository folder (default: the current folder).
    Returns:
        A copy of ``cfg`` with ``tracking_uri``, ``artifact_root`` and ``pipeline_id`` resolved.
    """
    root = Path(root or Path.cwd()).resolve()
    pipeline_id = cfg.pipeline_id or os.environ.get(PIPELINE_ID_ENV, "") or derive_pipeline_id(root)
    if not _PIPELINE_ID_RE.match(pipeline_id):
        raise ValueError(f"pipeline id {pipeline_id!r} may only hold letters, digits and _ . : -")
    return dataclasses.replace(
        cfg,
        tracking_uri=_absolute_sqlite(cfg.tracking_uri, root),
        artifact_root=_absolute_artifacts(cfg.artifact_root, root),
        pipeline_id=pipeline_id,
    )


def _absolute_sqlite(uri: str, root: Path) -> str:
    """``sqlite:///mlflow.db`` -> ``sqlite:////<root>/mlflow.db``; other URIs unchanged."""
    prefix = "sqlite:///"
    path = uri[len(prefix):] if uri.startswith(prefix) else ""
    if not path or path == ":memory:" or path.startswith("/"):
        return uri
    return prefix + str(root / path)


def _absolute_artifacts(artifact_root: str, root: Path) -> str:
    """A local artifact folder becomes absolute; URIs (``s3://``, ``file:``, ...) and "" stay as they are."""
    if not artifact_root or "://" in artifact_root or artifact_root.startswith("file:"):
        return artifact_root
    return str((root / artifact_root).resolve())


def derive_pipeline_id(root: str | Path) -> str:
    """A 16-hex-digit hash of the git commit of ``root`` and the bytes of ``root/params.yaml``."""
    params = Path(root) / "params.yaml"
    digest = hashlib.sha256(git_commit(Path(root)).encode() + b"\n")
    digest.update(params.read_bytes() if params.is_file() else b"")
    return digest.hexdigest()[:16]


def git_commit(cwd: Path | None = None) -> str:
    """``git rev-parse HEAD`` in ``cwd`` (default: the current folder), or ``"unknown"`` outside git."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else "unknown"


def dvc_input_hashes(stage: str, lock_path: str | Path = "dvc.lock") -> dict[str, str]:
    """The hashes of a stage's ``deps`` as recorded in ``dvc.lock``: ``{path: md5}``.

    DVC writes a stage's lock entry only after the stage has run, so while it runs, its own entry
    is the one from its previous run. A dep that another stage outputs therefore takes the hash of
    that stage's ``outs`` (written when it finished, so current); other deps (code) keep the
    recorded hash, and the git commit tag covers them. A missing lock or stage gives ``{}``.
    """
    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return {}
    stages = (yaml.safe_load(lock_path.read_text()) or {}).get("stages") or {}
    if stage not in stages:
        return {}
    produced = {
        entry["path"]: _entry_hash(entry)
        for name, body in stages.items() if name != stage
        for entry in (body or {}).get("outs") or []
    }
    deps = (stages[stage] or {}).get("deps") or []
    hashes = {entry["path"]: produced.get(entry["path"]) or _entry_hash(entry) for entry in deps}
    return {path: value for path, value in hashes.items() if value}


def _entry_hash(entry: Mapping[str, Any]) -> str:
    """The content hash of one lock entry (md5 locally; etag or checksum for cloud paths)."""
    for name in ("md5", "etag", "checksum", "version_id"):
        if entry.get(name):
            return str(entry[name])
    return ""


# ----------------------------------------------------------------------------- keys, values, retries


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dicts -> ``{"a.b.c": "value"}``; lists become JSON, long values are truncated for MLflow."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
        else:
            text = json.dumps(value, default=str) if isinstance(value, list | tuple | Mapping) else str(value)
            flat[clean_key(name)] = truncate(text, MAX_PARAM_VAL_LENGTH)
    return flat


def clean_key(key: str) -> str:
    """A valid MLflow param/metric/tag key: allowed characters only, a normalised relative path, ≤ 250 chars."""
    key = re.sub(r"[^\w./\- ]", "_", key)
    key = "/".join(part for part in key.split("/") if part not in ("", ".", "..")) or "_"
    if len(key) <= MAX_ENTITY_KEY_LENGTH:
        return key
    suffix = "~" + hashlib.sha256(key.encode()).hexdigest()[:8]  # keeps two long keys distinct
    return key[: MAX_ENTITY_KEY_LENGTH - len(suffix)] + suffix


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in a marker when something was cut."""
    return text if len(text) <= limit else text[: limit - len(TRUNCATED)] + TRUNCATED


def is_transient(err: Exception) -> bool:
    """True for errors worth retrying: sqlite's "database is locked" and MLflow's TEMPORARILY_UNAVAILABLE."""
    code = getattr(err, "error_code", "")
    return code == "TEMPORARILY_UNAVAILABLE" or "database is locked" in str(err)


def retry_transient(call: Callable[[], T], attempts: int = LOCK_RETRIES, base_delay_s: float = 0.2) -> T:
    """Run ``call``, retrying transient store errors with jittered exponential back-off.

    Two stage processes writing one sqlite file can still see "database is locked" past MLflow's
    own busy timeout (e.g. when a read transaction must upgrade to a write). The jitter comes from a
    private ``random.Random`` so the caller's seeded global RNG is not advanced.
    """
    jitter = random.Random()
    for attempt in range(attempts):
        try:
            return call()
        except MlflowException as err:
            if not is_transient(err) or attempt == attempts - 1:
                raise
            delay = min(base_delay_s * 2**attempt, 5.0) * (0.5 + jitter.random())
            log.warning("MLflow store busy (%s); retrying in %.1f s", str(err).splitlines()[0][:200], delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _batches(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# ----------------------------------------------------------------------------- the store


def check_reachable(tracking_uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast when the store cannot be reached: MLflow itself retries for minutes before giving up.

    A sqlite file must open as a database (its folder is created). For an http(s) server, any HTTP
    answer, even 401 or 404, or a TLS error (MLflow has its own TLS settings) counts as reachable;
    only a refused, timed-out or unresolvable connection raises ``TrackingError``.
    """
    if tracking_uri.startswith("sqlite:///"):
        _check_sqlite(tracking_uri)
    if not tracking_uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(tracking_uri.rstrip("/") + "/health", timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return
    except urllib.error.URLError as err:
        if isinstance(err.reason, ssl.SSLError):
            return
        reason = err.reason
    except (OSError, ValueError) as err:
        reason = err
    raise TrackingError(f"MLflow tracking server {tracking_uri} is unreachable: {reason}")


def _check_sqlite(tracking_uri: str) -> None:
    """Open the sqlite file once (creating it and its folder if missing) and read its schema version."""
    path = tracking_uri[len("sqlite:///"):].split("?", 1)[0]
    if not path or path == ":memory:":
        return
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(path, timeout=30)) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except (OSError, sqlite3.Error) as err:
        raise TrackingError(f"cannot use MLflow tracking store {tracking_uri}: {err}") from err


def _connect(cfg: TrackingConfig) -> tuple[MlflowClient, str]:
    """A client bound to ``cfg.tracking_uri`` and the id of ``cfg.experiment`` (created if missing)."""
    check_reachable(cfg.tracking_uri)
    client = MlflowClient(tracking_uri=cfg.tracking_uri)
    try:
        return client, _experiment_id(client, cfg)
    except TrackingError:
        raise
    except Exception as err:  # sqlalchemy, OSError and MlflowException all mean "cannot use this store"
        raise TrackingError(f"cannot use MLflow tracking store {cfg.tracking_uri}: {err}") from err


def _experiment_id(client: MlflowClient, cfg: TrackingConfig) -> str:
    """Find or create the experiment (a concurrent creation by another stage process is tolerated)."""
    experiment = retry_transient(lambda: client.get_experiment_by_name(cfg.experiment))
    if experiment is None:
        try:
            return retry_transient(lambda: client.create_experiment(cfg.experiment, cfg.artifact_root or None))
        except MlflowException:
            experiment = retry_transient(lambda: client.get_experiment_by_name(cfg.experiment))
            if experiment is None:
                raise
    if experiment.lifecycle_stage != "active":
        raise TrackingError(
            f"experiment {cfg.experiment!r} is deleted in {cfg.tracking_uri}; restore it "
            f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or configure another name"
        )
    return experiment.experiment_id


def _parent_runs(client: MlflowClient, experiment_id: str, pipeline_id: str) -> list[Any]:
    """Active parent runs tagged with ``pipeline_id``, oldest first (ties broken by run id)."""
    query = f"tags.`{TAG_PIPELINE_ID}` = '{pipeline_id}' and tags.`{TAG_ROLE}` = 'pipeline'"
    runs = retry_transient(lambda: client.search_runs([experiment_id], query, max_results=100))
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def _find_or_create_parent(client: MlflowClient, experiment_id: str, pipeline_id: str, commit: str) -> str:
    """The run id of the pipeline's parent run, found by tag or created.

    Two stage processes may both miss and both create one; after creating, each looks again and all
    agree on the oldest, and the loser deletes its own, so one parent remains.
    """
    found = _parent_runs(client, experiment_id, pipeline_id)
    if not found:
        tags = {TAG_PIPELINE_ID: pipeline_id, TAG_ROLE: "pipeline", TAG_GIT_COMMIT: commit, TAG_MLFLOW_COMMIT: commit}
        mine = retry_transient(
            lambda: client.create_run(experiment_id, tags=tags, run_name=f"pipeline-{pipeline_id}")
        ).info.run_id
        found = _parent_runs(client, experiment_id, pipeline_id)
        if found[0].info.run_id != mine:
            retry_transient(lambda: client.set_terminated(mine, "KILLED"))
            retry_transient(lambda: client.delete_run(mine))
    parent = found[0].info
    if parent.status != "RUNNING":
        retry_transient(lambda: client.update_run(parent.run_id, status="RUNNING"))
    return parent.run_id


def _stage_tags(cfg: TrackingConfig, stage: str, parent_id: str, commit: str, root: Path) -> dict[str, str]:
    """Tags of a new stage run: nesting, stage, pipeline, git commit and the DVC input hashes."""
    hashes = dvc_input_hashes(stage, root / "dvc.lock")
    tags = {
        TAG_PARENT_RUN: parent_id, TAG_ROLE: "stage", TAG_STAGE: stage, TAG_PIPELINE_ID: cfg.pipeline_id,
        TAG_GIT_COMMIT: commit, TAG_MLFLOW_COMMIT: commit,
    }
    tags.update({clean_key(TAG_DVC_PREFIX + path): value for path, value in hashes.items()})
    if hashes:
        tags[TAG_DVC_INPUTS] = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()
    return tags


# ----------------------------------------------------------------------------- runs


class StageRun:
    """One stage's MLflow run (nested under the pipeline run); use as a context manager or call ``close``."""

    def __init__(self, client: MlflowClient, run_id: str, parent_run_id: str, experiment_id: str) -> None:
        self.client, self.run_id, self.parent_run_id = client, run_id, parent_run_id
        self.experiment_id = experiment_id
        self.closed = False

    def __repr__(self) -> str:
        return f"{type(self).__name__}(run_id={self.run_id!r}, parent_run_id={self.parent_run_id!r})"

    def __enter__(self) -> StageRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close("FINISHED" if exc_type is None else "KILLED" if exc_type is KeyboardInterrupt else "FAILED")

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log (nested) params as dotted keys; values longer than MLflow's 6000 characters are truncated."""
        items = [Param(key, value) for key, value in flatten_params(params).items()]
        for batch in _batches(items, MAX_PARAMS_TAGS_PER_BATCH):
            retry_transient(lambda batch=batch: self.client.log_batch(self.run_id, params=batch))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Log scalar metrics at ``step`` (e.g. samples seen or optimiser steps)."""
        now = int(time.time() * 1000)
        items = [Metric(clean_key(key), float(value), now, int(step)) for key, value in metrics.items()]
        for batch in _batches(items, MAX_METRICS_PER_BATCH):
            retry_transient(lambda batch=batch: self.client.log_batch(self.run_id, metrics=batch))

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a local file (or a whole folder) into the run's artifacts, under ``artifact_path`` if given."""
        local_path = Path(local_path)
        if local_path.is_dir():
            self.client.log_artifacts(self.run_id, str(local_path), artifact_path)
        elif local_path.is_file():
            self.client.log_artifact(self.run_id, str(local_path), artifact_path)
        else:
            raise FileNotFoundError(f"no file or folder {local_path} to log as an artifact")

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        """Write ``obj`` as a JSON (or, for ``.yaml`` names, YAML) artifact, e.g. ``config.json``."""
        self.client.log_dict(self.run_id, dict(obj), name)

    def log_figure(self, fig: Any, name: str) -> None:
        """Save a matplotlib figure as an artifact (PNG unless ``name`` has another image extension)."""
        self.client.log_figure(self.run_id, fig, name if Path(name).suffix else f"{name}.png")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Set (or overwrite) run tags; values longer than MLflow's limit are truncated."""
        items = [RunTag(clean_key(key), truncate(str(value), MAX_TAG_VAL_LENGTH)) for key, value in tags.items()]
        for batch in _batches(items, MAX_PARAMS_TAGS_PER_BATCH):
            retry_transient(lambda batch=batch: self.client.log_batch(self.run_id, tags=batch))

    def close(self, status: str = "FINISHED") -> None:
        """End the run with ``status`` (FINISHED, FAILED or KILLED); the parent ends when no sibling runs."""
        if self.closed:
            return
        RunStatus.from_string(status)  # rejects unknown statuses before anything is written
        retry_transient(lambda: self.client.set_terminated(self.run_id, status))
        self.closed = True
        if self.parent_run_id:
            self._settle_parent(status)

    def _settle_parent(self, status: str) -> None:
        """Mark the parent run ended with this stage's status unless another stage run is still running."""
        query = f"tags.`{TAG_PARENT_RUN}` = '{self.parent_run_id}' and attributes.status = 'RUNNING'"
        running = retry_transient(lambda: self.client.search_runs([self.experiment_id], query, max_results=1))
        if not running:
            retry_transient(lambda: self.client.set_terminated(self.parent_run_id, status))


class NullRun(StageRun):
    """A run that logs nothing: what ranks other than 0 (and ``--dry-run``) get."""

    def __init__(self) -> None:
        self.client = None  # type: ignore[assignment]  # never used: every method below is a no-op
        self.run_id, self.parent_run_id, self.experiment_id = "", "", ""
        self.closed = False

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Do nothing."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Do nothing."""

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Do nothing."""

    def log_dict(self, obj: Mapping[str, Any], name: str) -> None:
        """Do nothing."""

    def log_figure(self, fig: Any, name: str) -> None:
        """Do nothing."""

    def set_tags(self, tags: Mapping[str, str]) -> None:
        """Do nothing."""

    def close(self, status: str = "FINISHED") -> None:
        """Do nothing."""
        self.closed = True


def open_stage_run(
    cfg: TrackingConfig, stage: str, params: Mapping[str, Any], tags: Mapping[str, str] | None = None,
    *, root: str | Path | None = None,
) -> StageRun:
    """Start the MLflow run of one stage, nested under the pipeline's parent run (found or created by tag).

    Args:
        cfg: tracking settings; resolved here with ``resolve_tracking_config`` (idempotent).
        stage: the DVC stage name, e.g. ``"train_prior"``.
        params: the stage's resolved params (nested dicts), logged as dotted keys.
        tags: extra tags, applied last, so they may override the automatic ones (e.g. ``thpad.git_commit``
            from the stage process when a Ray worker runs outside the git checkout).
        root: the repository folder holding ``.git``, ``dvc.lock`` and ``params.yaml`` (default: cwd).
    Returns:
        The open ``StageRun``.
    Raises:
        TrackingError: the tracking store is unreachable or unusable (the message names its URI).
    """
    root = Path(root or Path.cwd()).resolve()
    cfg = resolve_tracking_config(cfg, root)
    client, experiment_id = _connect(cfg)
    commit = git_commit(root)
    parent_id = _find_or_create_parent(client, experiment_id, cfg.pipeline_id, commit)
    run_tags = _stage_tags(cfg, stage, parent_id, commit, root)
    run_id = retry_transient(lambda: client.create_run(experiment_id, tags=run_tags, run_name=stage)).info.run_id
    run = StageRun(client, run_id, parent_id, experiment_id)
    run.log_params(params)
    if tags:
        run.set_tags(tags)
    log.info("MLflow: stage %s logs to run %s (pipeline run %s) at %s", stage, run_id, parent_id, cfg.tracking_uri)
    return run


def resume_stage_run(cfg: TrackingConfig, run_id: str, *, root: str | Path | None = None) -> StageRun:
    """Re-open an existing stage run (status back to RUNNING) so a resumed job keeps logging into it.

    Raises:
        TrackingError: the store is unreachable, or holds no run ``run_id``.
    """
    cfg = resolve_tracking_config(cfg, root)
    client, _ = _connect(cfg)
    try:
        info = retry_transient(lambda: client.get_run(run_id))
    except MlflowException as err:
        raise TrackingError(f"cannot resume run {run_id} in {cfg.tracking_uri}: {err}") from err
    parent_id = info.data.tags.get(TAG_PARENT_RUN, "")
    for rid in (run_id, parent_id):
        if rid and retry_transient(lambda rid=rid: client.get_run(rid)).info.status != "RUNNING":
            retry_transient(lambda rid=rid: client.update_run(rid, status="RUNNING"))
    return StageRun(client, run_id, parent_id, info.info.experiment_id)
