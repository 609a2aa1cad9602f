"""Configuration of ``train_disentangle`` (stage 2, TH-PAD supplement §I.3 "Reconstruction Learning for Non-Lip
Space"): which networks train in which phase, their learning rates, the losses, the data and the validation.

Every class maps 1:1 onto a params.yaml section. The schedule of phase one is the shared ``ScheduleParams``
(its ``lr`` is the base rate); each parameter group runs at ``base * lr_scale.<group>``. Phase two (only G
and D train) starts at ``phase_two.start_samples`` and has a schedule of its own, whose clock starts at the
boundary; the same group scales apply to it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from thpad.models.gaze import GAZE_PRESETS
from thpad.models.generator.discriminator import DISCRIMINATOR_PRESETS
from thpad.models.losses import GanKind, GazeDistance, LossWeights
from thpad.models.memory_bank import MEMORY_BANK_PRESETS
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHeadConfig
from thpad.models.vgg import VGG_PRESETS
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.config import ScalingParams, ScheduleParams, per_rank_batch
from thpad.pipelines.train.disentangle.augment import AugmentConfig
from thpad.pipelines.train.landmark_motion import LandmarkMotionParams
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config


@dataclass(frozen=True)
class LearningRateScales:
    """Each parameter group's learning rate as a multiple of the current schedule's base rate.

    Groups: ``identity`` E_id; ``visual`` E_v (backbone when trained, MLP_ol, MLP_nl, and MLP_cl with the L_cl
    logit scale when L_cl is on); ``audio`` MLP_a2l (and E_a when unfrozen); ``generator`` G; ``discriminator`` D.
    The paper starts the two MLPs of E_v at 1e-5, G at 2e-5 and D at 3.5e-6, i.e. visual 0.5, generator 1 and
    discriminator 0.175 of G's rate; it gives none for E_id and MLP_a2l.
    """

    identity: float
    visual: float
    audio: float
    generator: float
    discriminator: float

    def __post_init__(self) -> None:
        if min(self.identity, self.visual, self.audio, self.generator, self.discriminator) < 0:
            raise ValueError(f"learning-rate scales must be >= 0, got {self}")


@dataclass(frozen=True)
class PhaseTwoParams:
    """Phase two: from ``start_samples`` on only G and D train ("after the 40k-th step, we freeze other
    modules and train only G and D"). Its learning rate warms up over ``warmup_samples`` counted from the
    boundary, then follows a half cosine to ``lr * min_lr_ratio`` over ``decay_samples`` (as ``ScheduleParams``).
    A ``start_samples`` beyond ``schedule.total_samples`` means the run never enters phase two."""

    start_samples: int
    lr: float
    warmup_samples: int
    decay_samples: int
    min_lr_ratio: float

    def __post_init__(self) -> None:
        if self.start_samples < 0 or self.lr < 0 or not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"phase_two needs start_samples >= 0, lr >= 0 and min_lr_ratio in [0, 1], got {self}")


@dataclass(frozen=True)
class DisentangleLossParams:
    """The GAN loss kind (the supplement's Eq. I is the log loss: "nonsaturating"; PC-AVS uses "hinge"), the
    lambdas of supplement Eq. IV (all 1 in the paper) plus ``weights.cl`` for L_cl (see disentangle.py) and
    ``weights.lmk`` for L_lmk, whose targets ``landmark_motion`` describes (pipelines/train/landmark_motion.py), and
    ``weights.pix`` for L_pix, the pixel L1 over ``pixel_scales`` levels of an image pyramid (ours: without a VGG
    weights file the GAN and D's feature matching are the only image losses left, and a small generator learns
    slowly under them), and ``weights.mouth`` for L_mouth, the pixel L1 inside the driving frame's lip box widened
    by ``mouth_pad`` of its size on each side (ours: the mouth is a few percent of a frame's pixels), and
    ``weights.corr`` for L_corr, which asks the warping renderer to read the photo at its landmarks where the
    driving frame has the same landmarks (ours: a direct signal for where the face and the lips go, which the pixel
    loss gives only through image gradients), a weighted mean over the 68 points in which the 20 lip points weigh
    ``corr_lip_weight`` and the others 1, and ``weights.bound`` for L_bound, the mean excess over ``bound_limit`` of
    the logits under the warp's tanh bounds (ours: a flow head driven into saturation gets no gradient and stays
    there, and the renderer then ignores its code)."""

    gan_kind: GanKind
    weights: LossWeights
    pixel_scales: int
    landmark_motion: LandmarkMotionParams
    mouth_pad: float = 0.25
    corr_lip_weight: float = 1.0
    bound_limit: float = 3.0

    def __post_init__(self) -> None:
        if self.pixel_scales < 1:
            raise ValueError(f"loss.pixel_scales must be >= 1, got {self.pixel_scales}")
        if self.mouth_pad < 0:
            raise ValueError(f"loss.mouth_pad must be >= 0, got {self.mouth_pad}")
        if self.corr_lip_weight < 0:
            raise ValueError(f"loss.corr_lip_weight must be >= 0, got {self.corr_lip_weight}")
        if self.bound_limit <= 0:
            raise ValueError(f"loss.bound_limit must be > 0, got {self.bound_limit}")


@dataclass(frozen=True)
class PixelPretrainParams:
    """Reconstruction without the GAN before it starts (ours): on a fresh start, after E_v's L_lmk pretraining,
    E_id, E_v's phase-one parts, MLP_a2l and the renderer train for ``samples`` samples on the stage's L_pix,
    L_mouth and L_lmk (their weights in ``loss.weights``) under Adam at ``lr`` times each group's ``lr_scale``.
    Not on the stage's sample clock; 0 samples: none. Through a warping renderer the pixel loss teaches E_v pose
    faster than the GAN's mix of terms does (docs/render-quality.md)."""

    samples: int = 0
    lr: float = 0.002

    def __post_init__(self) -> None:
        if self.samples < 0 or self.lr < 0:
            raise ValueError(f"pixel_pretrain needs samples >= 0 and lr >= 0, got {self}")


@dataclass(frozen=True)
class FeatureLossParams:
    """The pretrained loss networks: VGG19 for L_VGG and the L2CS-style gaze encoder for L_gaze.

    Without a weights file a term is off and the run says so (log line and MLflow tag ``thpad.loss.*``),
    unless ``allow_random_features`` asks for the loss through random, untrained features.
    """

    vgg: str  # a VGG_PRESETS name
    vgg_weights: str | None  # torchvision vgg19 state-dict file
    vgg_layer_weights: tuple[float, ...]
    gaze: str  # a GAZE_PRESETS name
    gaze_weights: str | None  # L2CS-Net state-dict file
    gaze_distance: GazeDistance
    allow_random_features: bool

    def __post_init__(self) -> None:
        if self.vgg not in VGG_PRESETS or self.gaze not in GAZE_PRESETS:
            raise ValueError(f"vgg must be one of {sorted(VGG_PRESETS)} and gaze one of {sorted(GAZE_PRESETS)}")


@dataclass(frozen=True)
class DisentangleDataParams:
    """Training samples: a driving frame, its mel window and ``num_identity_frames`` frames of the same clip
    at least ``min_identity_distance`` frames away from it (storage.readers.FrameDataset)."""

    num_identity_frames: int
    min_identity_distance: int
    samples_per_clip: int
    shuffle_buffer: int
    loader_workers: int

    def __post_init__(self) -> None:
        if self.num_identity_frames < 1 or self.min_identity_distance < 1 or self.samples_per_clip < 1:
            raise ValueError("num_identity_frames, min_identity_distance and samples_per_clip must be >= 1")


@dataclass(frozen=True)
class DisentangleValidationParams:
    """The fixed validation set (rank 0, EMA networks), read from the first ``clips`` val clips.

    ``frames_per_clip`` evenly spaced frames per clip feed the probe (f_nl and f_l against the corpus's
    motion truth, ``probe_targets``, ridge penalty ``probe_ridge``); ``recon_frames_per_clip`` of them, with
    identity frames drawn as in training, feed the reconstruction metrics and ``grid_rows`` of those the grid.
    """

    clips: int
    frames_per_clip: int
    recon_frames_per_clip: int
    grid_rows: int
    probe_targets: tuple[str, ...]
    probe_folds: int
    probe_ridge: float

    def __post_init__(self) -> None:
        if self.clips < self.probe_folds or self.probe_folds < 2:
            raise ValueError(f"validation.clips ({self.clips}) must be >= probe_folds ({self.probe_folds}) >= 2")
        if not 1 <= self.recon_frames_per_clip <= self.frames_per_clip or self.grid_rows < 1:
            raise ValueError("validation needs 1 <= recon_frames_per_clip <= frames_per_clip and grid_rows >= 1")
        if self.probe_ridge <= 0:
            raise ValueError(f"validation.probe_ridge must be > 0, got {self.probe_ridge}")


@dataclass(frozen=True)
class DisentangleConfig:
    """``train_disentangle``: E_id, E_v's heads (and backbone), MLP_a2l, G and D under L_G (supplement Eq. IV).

    ``model``, ``discriminator`` and ``memory_bank`` name presets. ``contrastive`` is stage 1's snapshot
    (E_a, E_v with MLP_cl, logit scale); ``identity_weights`` an optional torchvision ResNeXt file for E_id.
    ``train_visual_backbone``: the paper's E_v backbone is pretrained as in LPD; without such weights it
    trains here, on LPD's augmented driving frames. ``train_audio_encoder`` unfreezes E_a (frozen in the paper).
    ``betas`` are Adam's for every group (PC-AVS: 0.5, 0.999). ``renderer`` replaces the model preset's renderer
    (``TalkingHeadConfig.renderer``): "synthesis" is the paper's generator, "warp" moves the identity frame's pixels.
    """

    model: str
    renderer: Literal["synthesis", "warp"]
    discriminator: str
    memory_bank: str
    identity_weights: str | None
    train_visual_backbone: bool
    train_audio_encoder: bool
    betas: tuple[float, float]
    lr_scale: LearningRateScales
    phase_two: PhaseTwoParams
    loss: DisentangleLossParams
    pixel_pretrain: PixelPretrainParams
    feature_losses: FeatureLossParams
    augment: AugmentConfig
    data: DisentangleDataParams
    validation: DisentangleValidationParams
    schedule: ScheduleParams
    scaling: ScalingParams
    contrastive: str
    shards: str
    work: str
    out: str
    tracking: TrackingConfig
    s3: S3Config
    ray: RayConfig

    def __post_init__(self) -> None:
        presets = (("model", self.model, TALKING_HEAD_PRESETS), ("discriminator", self.discriminator,
                   DISCRIMINATOR_PRESETS), ("memory_bank", self.memory_bank, MEMORY_BANK_PRESETS))
        for name, value, registry in presets:
            if value not in registry:
                raise ValueError(f"{name} {value!r} is not one of {sorted(registry)}")
        if self.renderer not in ("synthesis", "warp"):
            raise ValueError(f"renderer must be 'synthesis' or 'warp', got {self.renderer!r}")
        talking_head_config(self)  # the preset and the renderer must agree on sizes
        weights = self.loss.weights
        if self.pixel_pretrain.samples > 0 and max(weights.pix, weights.mouth, weights.corr) <= 0:
            raise ValueError("pixel_pretrain.samples > 0 needs a reconstruction loss: set loss.weights.pix, "
                             "loss.weights.mouth or loss.weights.corr above 0, or pixel_pretrain.samples to 0")
        for name in ("corr", "bound"):
            if getattr(weights, name) > 0 and self.renderer != "warp":
                raise ValueError(f"loss.weights.{name} (a term of the warping renderer) needs renderer: warp; set it "
                                 f"to 0 for renderer {self.renderer!r}")
        feature_dim = TALKING_HEAD_PRESETS[self.model].audio.out_dim
        if MEMORY_BANK_PRESETS[self.memory_bank].dim != feature_dim:
            raise ValueError(f"memory_bank {self.memory_bank!r} holds features of another width than "
                             f"model {self.model!r} ({feature_dim})")
        per_rank_batch(self.schedule.batch_size, self.scaling.num_workers, self.schedule.accum_rounds)


def talking_head_config(cfg: DisentangleConfig) -> TalkingHeadConfig:
    """The talking head stage 2 trains: the ``model`` preset with the ``renderer`` param."""
    return dataclasses.replace(TALKING_HEAD_PRESETS[cfg.model], renderer=cfg.renderer)
