"""The config of ``thpad submit`` (params section ``submit``): which Ray cluster's Jobs API to talk to,
what the job uploads and what it installs. The paper is silent on all of it (it names no infrastructure)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Never uploaded: environments, DVC/git internals, pipeline outputs and work folders, caches. The job
# reads and writes its data where params say (s3:// at scale), never inside the uploaded folder.
DEFAULT_EXCLUDES = (".git", ".dvc", ".venv", "venv", "data", "work", "outputs", "mlruns", "mlflow.db",
                    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".make", "*.egg-info")


@dataclass(frozen=True)
class SubmitConfig:
    """How ``thpad submit`` sends stages to an existing Ray cluster as Ray jobs.

    Attributes:
        address: the cluster's Jobs API, i.e. its dashboard (``http://HEAD:8265``); a GCS address
            (``HEAD:6379``) works too. Empty: ``RAY_API_SERVER_ADDRESS``, else ``RAY_ADDRESS``.
        pip: requirement strings installed in the job's runtime environment. Empty by default: the
            cluster's image carries thpad's dependencies (a pip install per job is slow and unpinned).
        excludes: paths left out of the uploaded project. A pattern with no ``/`` matches any path
            component (``__pycache__``, ``*.pyc``); one with ``/`` matches from the project root.
        env_vars: variables set for the job's driver and all its workers.
        pass_env: names of variables copied from the submitting shell when set there (credentials, a
            tracking server URL), so they need not be written into params.
    """

    address: str = ""
    pip: tuple[str, ...] = ()
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    env_vars: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bad = [k for k, v in self.env_vars.items() if not isinstance(k, str) or not isinstance(v, str)]
        if bad:
            raise ValueError(f"env_vars.{bad[0]}: values must be strings (quote numbers in YAML)")
