"""Configuration of the training stages: scaling and schedule shared by all, and the ``train_contrastive``
section (stage 1, TH-PAD supplement §I.3: E_a, E_v and MLP_cl with the CLIP-style loss L_cl).

Every class maps 1:1 onto a params.yaml section. Values derived from others (the frame sampling of the
reader, the per-rank batch) are computed in ``pipelines/train/contrastive.py``, not stored here.
"""

from __future__ import annotations

from dataclasses import dataclass

from thpad.models.memory_bank import MEMORY_BANK_PRESETS
from thpad.models.talking_head import TALKING_HEAD_PRESETS
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.landmark_motion import LandmarkMotionParams
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class ScalingParams:
    """How many Ray Train workers, on what: maps onto ``ray.train.ScalingConfig``."""

    num_workers: int
    use_gpu: bool
    cpus_per_worker: float

    def __post_init__(self) -> None:
        if self.num_workers < 1 or self.cpus_per_worker <= 0:
            raise ValueError(f"scaling needs num_workers >= 1 and cpus_per_worker > 0, got {self}")


@dataclass(frozen=True)
class ScheduleParams:
    """Progress, learning rate, EMA and maintenance intervals, all counted in samples seen.

    ``batch_size`` is global (over all workers and accumulation rounds). The learning rate rises
    linearly over ``warmup_samples``, then follows a half cosine down to ``lr * min_lr_ratio`` over
    ``decay_samples`` and stays there; the schedule does not depend on ``total_samples``, so a run
    can be extended (a larger ``total_samples``) and resume from its training state.
    """

    batch_size: int
    accum_rounds: int
    total_samples: int
    lr: float
    warmup_samples: int
    decay_samples: int
    min_lr_ratio: float
    grad_clip: float  # max global gradient norm; 0 disables clipping
    ema_decay: float  # per update: ema = decay * ema + (1 - decay) * weights
    log_every_samples: int
    checkpoint_every_samples: int
    seed: int
    max_failures: int  # worker failures Ray Train recovers from (restarting from the last checkpoint)
    mixed_precision: bool  # bf16 autocast on GPU; ignored on CPU

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.accum_rounds < 1 or self.total_samples < 0:
            raise ValueError("batch_size and accum_rounds must be >= 1 and total_samples >= 0")
        if not 0.0 <= self.ema_decay < 1.0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError("ema_decay must be in [0, 1) and min_lr_ratio in [0, 1]")
        if self.log_every_samples < 1 or self.checkpoint_every_samples < 1:
            raise ValueError("log_every_samples and checkpoint_every_samples must be >= 1")


@dataclass(frozen=True)
class ContrastiveDataParams:
    """What the stage reads: training frames drawn per clip, and a fixed validation batch.

    Validation takes ``val_frames_per_clip`` evenly spaced frames from each of the first val clips
    until ``val_pairs`` (audio window, frame) pairs are collected: N of the retrieval accuracy.
    """

    samples_per_clip: int
    shuffle_buffer: int
    loader_workers: int
    val_pairs: int
    val_frames_per_clip: int

    def __post_init__(self) -> None:
        if self.samples_per_clip < 1 or self.val_pairs < 5 or self.val_frames_per_clip < 1:
            raise ValueError("samples_per_clip >= 1, val_pairs >= 5 (top-5) and val_frames_per_clip >= 1")


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
        per_round = self.scaling.num_workers * self.schedule.accum_rounds
        if self.schedule.batch_size % per_round:
            raise ValueError(f"schedule.batch_size {self.schedule.batch_size} is not divisible by "
                             f"num_workers * accum_rounds = {per_round}")
