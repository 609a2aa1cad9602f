"""Configuration of the two motion-prior stages: ``train_prior`` (stage 4, the diffusion prior P_a2nl, TH-PAD
supplement §I.3/§I.4) and ``train_prior_ar`` (stage 5, the causal auto-regressive baseline). Both read the
per-clip feature sequences of ``extract_features`` and share the data, schedule and validation pieces.

Every class maps 1:1 onto a params.yaml section. The ``validation`` block holds evaluation settings only
(which sampler, how many steps, the guidance scale s): they never enter the training state's key, so
changing them reuses a trained state (``harness.RESUMABLE_FIELDS`` lists ``validation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from thpad.models.autoregressive import AutoregressiveConfig
from thpad.models.diffusion.process import DiffusionConfig
from thpad.models.motion_denoiser import DENOISER_PRESETS
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.config import ScalingParams, ScheduleParams, per_rank_batch
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class PriorDataParams:
    """Training windows: random crops of at most ``window`` frames (the prior's L, 128 in the paper).

    A clip shorter than ``window`` gives one padded window with a padding mask; the sample corpus's
    160-frame clips give crops at a random offset, drawn per (seed, rank, epoch).
    """

    window: int

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"window must be >= 2 frames (the velocity loss needs pairs), got {self.window}")


@dataclass(frozen=True)
class ValidationParams:
    """What rank 0 evaluates at every checkpoint and at the end, on the val split with the EMA network.

    Each of the first ``max_clips`` val clips contributes its first ``data.window`` frames (no known frames).
    The figure shows ``figure_clips`` clips along the first ``figure_components`` principal components of
    the true val features. ``seed`` seeds the sampling noise, so every validation sees the same noise.
    """

    max_clips: int
    figure_clips: int
    figure_components: int
    seed: int

    def __post_init__(self) -> None:
        if self.max_clips < 1 or self.figure_clips < 0 or self.figure_components < 1:
            raise ValueError("validation needs max_clips >= 1, figure_clips >= 0 and figure_components >= 1")


@dataclass(frozen=True)
class PriorValidationParams(ValidationParams):
    """Validation of the diffusion prior: samples at guidance ``guidance`` and at s = 0 (unconditional).

    The paper samples with s = 2.5 (supplement §II.2); MDM runs all 1000 DDPM steps, we validate with DDIM
    at ``num_steps`` steps (50 by default) to keep validation cheap. ``num_seeds`` samples per clip and s.
    ``guidance_rescale`` (phi of ``models.diffusion.sampling.rescale_guided``; 0 = the paper's plain CFG)
    applies to the guided samples.
    """

    guidance: float
    sampler: Literal["ddpm", "ddim"]
    num_steps: int
    eta: float
    num_seeds: int
    guidance_rescale: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_steps < 1 or self.num_seeds < 1 or self.eta < 0:
            raise ValueError("validation needs num_steps >= 1, num_seeds >= 1 and eta >= 0")
        if not 0.0 <= self.guidance_rescale <= 1.0:
            raise ValueError(f"validation.guidance_rescale must be in [0, 1], got {self.guidance_rescale}")


def check_prior_sizes(model: str, window: int, schedule: ScheduleParams, scaling: ScalingParams) -> None:
    """The checks both prior configs share: a known preset whose max_frames holds the window, and a batch
    that splits over the workers and accumulation rounds."""
    if model not in DENOISER_PRESETS:
        raise ValueError(f"model {model!r} is not one of {sorted(DENOISER_PRESETS)}")
    if window > DENOISER_PRESETS[model].max_frames:
        raise ValueError(f"data.window {window} is longer than the {model!r} prior's max_frames "
                         f"{DENOISER_PRESETS[model].max_frames}")
    per_rank_batch(schedule.batch_size, scaling.num_workers, schedule.accum_rounds)


@dataclass(frozen=True)
class PriorConfig:
    """``train_prior``: the bidirectional motion denoiser under the diffusion loss L_a2nl + L_vel.

    ``model`` names a ``DENOISER_PRESETS`` entry; its ``nl_dim`` and ``audio_dim`` are replaced by the widths
    of the features read. ``diffusion`` holds the process (T, schedule) and the training-time choices
    (condition dropout, mask editing, loss weights). ``features`` is the ``extract_features`` out folder;
    ``work`` holds the training states; ``out`` is the final EMA snapshot (DVC out).
    """

    model: str
    diffusion: DiffusionConfig
    data: PriorDataParams
    validation: PriorValidationParams
    schedule: ScheduleParams
    scaling: ScalingParams
    features: str
    work: str
    out: str
    tracking: TrackingConfig
    s3: S3Config
    ray: RayConfig

    def __post_init__(self) -> None:
        check_prior_sizes(self.model, self.data.window, self.schedule, self.scaling)
        if self.validation.num_steps > self.diffusion.num_steps:
            raise ValueError(f"validation.num_steps {self.validation.num_steps} exceeds diffusion.num_steps "
                             f"{self.diffusion.num_steps}")


@dataclass(frozen=True)
class PriorARConfig:
    """``train_prior_ar``: the same transformer with causal attention and no timestep, trained by
    teacher-forced next-frame MSE (``autoregressive`` holds the loss weights). Fields as ``PriorConfig``."""

    model: str
    autoregressive: AutoregressiveConfig
    data: PriorDataParams
    validation: ValidationParams
    schedule: ScheduleParams
    scaling: ScalingParams
    features: str
    work: str
    out: str
    tracking: TrackingConfig
    s3: S3Config
    ray: RayConfig

    def __post_init__(self) -> None:
        check_prior_sizes(self.model, self.data.window, self.schedule, self.scaling)
