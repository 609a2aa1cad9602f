"""Configuration of feature extraction (``extract_features`` section of params.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from thpad.pipelines.ray_env import RayConfig
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class FeaturesConfig:
    """``extract_features``: run E_v (with MLP_ol, MLP_nl) and E_a of the stage-2 snapshot over every clip.

    ``disentangle`` is the TalkingHead snapshot written by ``train_disentangle``; ``shards`` the preprocess out
    folder (``manifest.parquet``, ``shards/``); ``out`` the features folder (storage/features.py, the DVC out).
    ``workers`` Ray Data actors, each with ``cpus_per_worker`` CPUs (its torch threads) and ``gpus_per_worker``
    GPUs (0: run on CPU; > 0: the encoders run on the actor's GPU), extract one shard at a time;
    ``batch_frames`` frames of a clip go through the encoders at once (it bounds memory, not results). The run is
    recorded as the MLflow run of stage ``extract_features`` (``tracking``), beside the training stages.
    """

    disentangle: str
    shards: str
    out: str
    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    batch_frames: int
    tracking: TrackingConfig
    s3: S3Config
    ray: RayConfig

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus_per_worker <= 0 or self.gpus_per_worker < 0 or self.batch_frames < 1:
            raise ValueError("extract_features needs workers >= 1, cpus_per_worker > 0, gpus_per_worker >= 0 and "
                             f"batch_frames >= 1, got {self.workers}, {self.cpus_per_worker}, "
                             f"{self.gpus_per_worker}, {self.batch_frames}")
