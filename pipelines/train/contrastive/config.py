"""Configuration of ``train_contrastive`` (stage 1, TH-PAD supplement §I.3: E_a, E_v and MLP_cl with the
CLIP-style loss L_cl), one class per params.yaml section.

Values derived from others (the frame sampling of the reader, the per-rank batch) are computed in
``contrastive/loop.py``, not stored here.
"""

from __future__ import annotations

from dataclasses import dataclass

from thpad.models.memory_bank import MEMORY_BANK_PRESETS
from thpad.models.talking_head import TALKING_HEAD_PRESETS
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.config import ScalingParams, ScheduleParams, per_rank_batch
from thpad.pipelines.train.landmark_motion import LandmarkMotionParams
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class ContrastiveDataParams:
    """What the stage reads: training frames drawn per clip."""

    samples_per_clip: int
    shuffle_buffer: int
    loader_workers: int

    def __post_init__(self) -> None:
        if self.samples_per_clip < 1:
            raise ValueError("samples_per_clip must be >= 1")


@dataclass(frozen=True)
class ContrastiveValidationParams:
    """The fixed validation batch: ``frames_per_clip`` evenly spaced frames from each of the first val clips
    until ``pairs`` (audio window, frame) pairs are collected, N of the retrieval accuracy. Outside the run key,
    as every stage's ``validation``."""

    pairs: int
    frames_per_clip: int

    def __post_init__(self) -> None:
        if self.pairs < 5 or self.frames_per_clip < 1:
            raise ValueError("validation needs pairs >= 5 (top-5) and frames_per_clip >= 1")


@dataclass(frozen=True)
class ContrastiveConfig:
    """``train_contrastive``: the audio encoder E_a and the visual encoder E_v with MLP_cl under L_cl.

    ``model`` and ``memory_bank`` name presets of ``TALKING_HEAD_PRESETS`` and ``MEMORY_BANK_PRESETS``.
    ``shards`` is the preprocess out folder (``manifest.parquet``, ``shards/``); ``work`` holds the
    training states (``WORK/ray_train/train_contrastive-HASH``); ``out`` is the final snapshot (DVC out).
    ``landmark_motion`` is E_v's warm-up before L_cl: its backbone regresses the landmark motion of
    ``points`` for ``pretrain_samples`` samples (0: none, the paper's recipe, whose E_v comes pretrained).
    """

    model: str
    memory_bank: str
    init_temperature: float
    landmark_motion: LandmarkMotionParams
    data: ContrastiveDataParams
    validation: ContrastiveValidationParams
    schedule: ScheduleParams
    scaling: ScalingParams
    shards: str
    work: str
    out: str
    tracking: TrackingConfig
    s3: S3Config
    ray: RayConfig

    def __post_init__(self) -> None:
        if self.model not in TALKING_HEAD_PRESETS:
            raise ValueError(f"model {self.model!r} is not one of {sorted(TALKING_HEAD_PRESETS)}")
        if self.memory_bank not in MEMORY_BANK_PRESETS:
            raise ValueError(f"memory_bank {self.memory_bank!r} is not one of {sorted(MEMORY_BANK_PRESETS)}")
        feature_dim = TALKING_HEAD_PRESETS[self.model].audio.out_dim
        if MEMORY_BANK_PRESETS[self.memory_bank].dim != feature_dim:
            raise ValueError(f"memory_bank {self.memory_bank!r} holds features of another width than "
                             f"model {self.model!r} ({feature_dim})")
        per_rank_batch(self.schedule.batch_size, self.scaling.num_workers, self.schedule.accum_rounds)
