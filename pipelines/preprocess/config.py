"""Configuration of preprocessing (``preprocess`` section of params.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from thpad.pipelines.media.config import AlignConfig, AudioConfig, TrackConfig
from thpad.pipelines.preprocess.plan import SplitConfig
from thpad.pipelines.ray_env import RayConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class InputPolicy:
    """What inputs are accepted; everything else is recorded in rejects.parquet with a reason."""

    fps_range: tuple[float, float]
    sample_rate_range: tuple[int, int]
    length_tolerance_frames: float
    min_frames: int
    max_seconds: float


@dataclass(frozen=True)
class PreprocessConfig:
    """``thpad preprocess SRC OUT``: decode, track, align and shard a VoxCeleb2-layout corpus.

    ``source`` and ``out`` are local folders or ``s3://`` URIs; ``workers`` Ray workers (one CPU each)
    process shards in parallel; ``jpeg_quality`` is the quality of the per-frame JPEGs in the shards.
    """

    source: str
    out: str
    workers: int
    jpeg_quality: int
    policy: InputPolicy
    audio: AudioConfig
    track: TrackConfig
    align: AlignConfig
    split: SplitConfig
    s3: S3Config
    ray: RayConfig
