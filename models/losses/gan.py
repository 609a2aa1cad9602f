"""Adversarial and discriminator feature-matching losses, organised in phases as in StyleGAN's loss.py.

TH-PAD supplement Eq. I (the log / non-saturating GAN loss, softplus form) and Eq. II (L1 between
discriminator features); PC-AVS (docs/paper-notes.md §2.6) uses the hinge loss and divides feature matching by the
number of scales. Every function takes lists with one entry per discriminator scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

GanKind = Literal["nonsaturating", "hinge"]


def _check_kind(kind: str) -> None:
    if kind not in ("nonsaturating", "hinge"):
        raise ValueError(f"unknown GAN loss '{kind}' (use 'nonsaturating' or 'hinge')")


def adversarial_g_loss(fake_logits: Sequence[torch.Tensor], kind: GanKind) -> torch.Tensor:
    """Generator phase: make D score the fakes as real, averaged over scales.

    Non-saturating: softplus(-D(G(f))) = -log sigmoid(D(G(f))); hinge: -D(G(f)).
    Args:
        fake_logits: per scale, D's logits on generated images (any shape, e.g. (B, 1, h, w)).
    Returns:
        scalar loss.
    """
    _check_kind(kind)
    per_scale = [F.softplus(-z).mean() if kind == "nonsaturating" else -z.mean() for z in fake_logits]
    return torch.stack(per_scale).mean()


def adversarial_d_loss(
    real_logits: Sequence[torch.Tensor], fake_logits: Sequence[torch.Tensor], kind: GanKind
) -> torch.Tensor:
    """Discriminator phase: score reals high and fakes low, averaged over scales.

    Non-saturating (Eq. I): softplus(-D(I)) + softplus(D(G(f))); hinge: relu(1 - D(I)) + relu(1 + D(G(f))).
    Args:
        real_logits, fake_logits: per scale, D's logits on real and on generated (detached) images.
    Returns:
        scalar loss.
    """
    _check_kind(kind)
    if len(real_logits) != len(fake_logits):
        raise ValueError(f"{len(real_logits)} real scales but {len(fake_logits)} fake scales")
    per_scale = []
    for real, fake in zip(real_logits, fake_logits, strict=True):
        if kind == "nonsaturating":
            per_scale.append(F.softplus(-real).mean() + F.softplus(fake).mean())
        else:
            per_scale.append(F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean())
    return torch.stack(per_scale).mean()


def feature_matching_loss(
    real_feats: Sequence[Sequence[torch.Tensor]], fake_feats: Sequence[Sequence[torch.Tensor]]
) -> torch.Tensor:
    """L1 between D's intermediate features of real and generated images (Eq. II), / number of scales.

    Pass the intermediate features only (not the final logits). When feature 0 of each scale is D's input
    image, as in PC-AVS, this includes the pixel L1 term. Real features are detached.
    Args:
        real_feats, fake_feats: per scale, a list of feature maps (B, C_k, H_k, W_k).
    Returns:
        scalar loss.
    """
    if len(real_feats) != len(fake_feats) or not real_feats:
        raise ValueError(f"{len(real_feats)} real scales but {len(fake_feats)} fake scales")
    total = fake_feats[0][0].new_zeros(())
    for real_scale, fake_scale in zip(real_feats, fake_feats, strict=True):
        for real, fake in zip(real_scale, fake_scale, strict=True):
            total = total + F.l1_loss(fake, real.detach())
    return total / len(real_feats)
