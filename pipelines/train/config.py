"""Configuration shared by every training stage: how a stage scales over Ray workers and its schedule (updates,
batch, learning rate, EMA, checkpoints). Each maps onto a block of a stage's params.yaml section."""

from __future__ import annotations

from dataclasses import dataclass


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


def per_rank_batch(batch_size: int, num_workers: int, accum_rounds: int) -> int:
    """Samples per rank per accumulation round: the global batch split evenly.

    Raises:
        ValueError: the batch does not split over ``num_workers`` ranks x ``accum_rounds`` rounds.
    """
    per_round = num_workers * accum_rounds
    if batch_size % per_round:
        raise ValueError(f"schedule.batch_size {batch_size} is not divisible by num_workers * accum_rounds = "
                         f"{per_round}")
    return batch_size // per_round
