"""Starting or joining Ray: a quiet local Ray on loopback for the embedded default and tests, or an
existing cluster (``RayConfig.address`` or ``RAY_ADDRESS``) at scale, with no code change between.

The local settings follow what was measured on this machine (environment.md): without
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` a local Ray binds every interface and uses the host address;
without ``RAY_AUTH_MODE=disabled`` it writes a token file in the home folder. Those variables are set
only when starting a local Ray, never when joining a cluster.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

LOCAL_ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DATA_LOG_LEVEL": "ERROR",
    "RAY_DATA_DISABLE_PROGRESS_BARS": "0",
}


@dataclass(frozen=True)
class RayConfig:
    """Where Ray runs: ``address`` empty starts a local Ray with ``num_cpus``; else joins a cluster."""

    address: str
    num_cpus: int


def cluster_address(cfg: RayConfig) -> str:
    """The cluster to join ('' for a new local Ray): the config's address, else ``RAY_ADDRESS``."""
    return cfg.address or os.environ.get("RAY_ADDRESS", "")


def ensure_ray(cfg: RayConfig) -> None:
    """Connect to Ray once per process (a second call is a no-op).

    Workers import the project by its editable install; ``PYTHONPATH`` and ``AWS_*`` variables are
    passed to them through the runtime environment so they see the same code and credentials.
    """
    address = cluster_address(cfg)
    if not address:
        os.environ.update(LOCAL_ENV)
    import ray

    if ray.is_initialized():
        return
    env_vars = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "PYTHONPATH"}
    if address:
        ray.init(address=address, runtime_env={"env_vars": env_vars}, log_to_driver=True)
        return
    ray.init(num_cpus=cfg.num_cpus, include_dashboard=False, runtime_env={"env_vars": env_vars},
             _temp_dir=_short_temp_dir(), configure_logging=True, logging_level="WARNING")


def _short_temp_dir() -> str:
    """Ray's unix sockets need a short path; a fresh folder under the system temp dir is short."""
    return tempfile.mkdtemp(prefix="thpad-ray-", dir=os.environ.get("THPAD_RAY_TMP", "/tmp"))


def project_root() -> Path:
    """The repository root (for job submission's working directory)."""
    return Path(__file__).resolve().parents[1]
