"""The ``runtime`` section of ``params.yaml``: how and where the stages run (Ray, MLflow, the S3 client, worker
counts). No stage lists it among its DVC params, because no result depends on it; ``stages/params.py`` copies it
into the stage configs that need it."""

from __future__ import annotations

from dataclasses import dataclass

from thpad.pipelines.ray_env import RayConfig
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class WorkersConfig:
    """Parallel workers of the stages whose outputs do not depend on their number."""

    corpus: int
    preprocess: int
    extract_features: int
    generate: int


@dataclass(frozen=True)
class RuntimeConfig:
    """How and where the stages run; never a DVC param of a stage, since no result depends on it."""

    ray: RayConfig
    tracking: TrackingConfig
    s3: S3Config
    workers: WorkersConfig
