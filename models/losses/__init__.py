"""Training losses of TH-PAD (supplement §I.3, docs/paper-notes.md §1.5): GAN phases, feature matching, perceptual,
gaze, contrastive (with memory-bank negatives), orthogonality and velocity losses; ours: a pixel pyramid L1, a box L1,
a point L1 and a penalty on logits out of range; plus their weights.

Losses take tensors and feature lists, never networks, so each is testable on its own.
"""

from thpad.models.losses.bounds import excess_l1
from thpad.models.losses.contrastive import LogitScale, info_nce_loss, orthogonality_loss
from thpad.models.losses.gan import GanKind, adversarial_d_loss, adversarial_g_loss, feature_matching_loss
from thpad.models.losses.motion import masked_mse, velocity_loss
from thpad.models.losses.reconstruction import (
    VGG_LAYER_WEIGHTS,
    GazeDistance,
    box_l1,
    gaze_loss,
    perceptual_loss,
    point_l1,
    pyramid_l1,
)
from thpad.models.losses.weights import LOSS_PRESETS, LossConfig, LossWeights, weighted_total

__all__ = [
    "LOSS_PRESETS",
    "VGG_LAYER_WEIGHTS",
    "GanKind",
    "GazeDistance",
    "LogitScale",
    "LossConfig",
    "LossWeights",
    "adversarial_d_loss",
    "adversarial_g_loss",
    "box_l1",
    "excess_l1",
    "feature_matching_loss",
    "gaze_loss",
    "info_nce_loss",
    "masked_mse",
    "orthogonality_loss",
    "perceptual_loss",
    "point_l1",
    "pyramid_l1",
    "velocity_loss",
    "weighted_total",
]
