"""Loss weights and loss settings of the disentanglement stage, with the paper and PC-AVS presets.

TH-PAD supplement Eq. IV: L_G = l_ol L_ol + l_gaze L_gaze + l_L1 L_L1 + l_GAN L_GAN + l_VGG L_VGG with all
lambdas 1, and the log GAN loss of Eq. I. PC-AVS (docs/paper-notes.md §2.6) uses the hinge loss, lambda_feat = 10
(feature matching incl. the pixel term), lambda_vgg = 10 and lambda_contrastive = 100.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

import torch

from thpad.models.losses.gan import GanKind
from thpad.models.losses.reconstruction import VGG_LAYER_WEIGHTS, GazeDistance


@dataclass(frozen=True)
class LossWeights:
    """One lambda per loss term; the keys of ``weighted_total``'s dict are these field names."""

    gan: float = 1.0  # L_GAN (Eq. I)
    feat: float = 1.0  # L_L1, discriminator feature matching (Eq. II)
    vgg: float = 1.0  # L_VGG (Eq. III)
    ol: float = 1.0  # L_ol
    gaze: float = 1.0  # L_gaze
    cl: float = 1.0  # L_cl with memory-bank negatives, when trained in this stage
    pix: float = 0.0  # L_pix, pixel L1 over an image pyramid (ours, not the paper's: needs no weights file)
    mouth: float = 0.0  # L_mouth, pixel L1 in the mouth's box (ours, not the paper's: a few percent of the frame)
    lmk: float = 0.0  # L_lmk, f_nl's landmark-motion head (ours, not the paper's: pipelines/train/landmark_motion.py)
    corr: float = 0.0  # L_corr, the warp's landmark correspondence (ours, not the paper's: a warping renderer only)
    bound: float = 0.0  # L_bound, the warp's tanh logits kept in range (ours, not the paper's: a warping renderer only)


@dataclass(frozen=True)
class LossConfig:
    """Which GAN loss and distances to use, the VGG layer weights, the temperature and the weights."""

    gan_kind: GanKind = "nonsaturating"
    gaze_distance: GazeDistance = "l1"
    vgg_layer_weights: tuple[float, ...] = VGG_LAYER_WEIGHTS
    init_temperature: float = 0.07  # CLIP's initial temperature
    max_logit_scale: float = 100.0  # CLIP's clamp of 1/temperature
    weights: LossWeights = field(default_factory=LossWeights)


LOSS_PRESETS: dict[str, LossConfig] = {
    "paper": LossConfig(),
    "pcavs": LossConfig(gan_kind="hinge", weights=LossWeights(feat=10.0, vgg=10.0, cl=100.0)),
}


def weighted_total(terms: Mapping[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Sum of lambda_k * term_k over the given terms.

    Args:
        terms: scalar losses keyed by ``LossWeights`` field names (a subset is fine).
        weights: the lambdas.
    Returns:
        scalar total.
    """
    names = {f.name for f in fields(LossWeights)}
    unknown = sorted(set(terms) - names)
    if unknown:
        raise KeyError(f"unknown loss term '{unknown[0]}' (allowed: {', '.join(sorted(names))})")
    if not terms:
        raise ValueError("no loss terms to sum")
    return torch.stack([getattr(weights, name) * value for name, value in terms.items()]).sum()
