"""Losses computed through a pretrained network (VGG19 perceptual loss, L2CS-style gaze loss), with
their availability: without a weights file such a loss is off and reports itself unavailable with the
reason, unless ``allow_random_features`` asks for a loss through random, untrained features.

Random features are a deliberate, documented choice, never a silent fallback: a loss through an
untrained network measures something, but not what the paper's loss measures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch
from torch import nn

from models.gaze import GAZE_PRESETS, GazeEncoder, GazeEncoderConfig
from models.losses import VGG_LAYER_WEIGHTS, GazeDistance, gaze_loss, perceptual_loss
from models.vgg import VGG_PRESETS, VGG19Features, VGGConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PerceptualLossConfig:
    """VGG19 perceptual L1; ``weights`` is a torchvision vgg19 state-dict file or None."""

    vgg: VGGConfig = field(default_factory=lambda: VGG_PRESETS["paper"])
    weights: str | None = None
    allow_random_features: bool = False
    layer_weights: tuple[float, ...] = VGG_LAYER_WEIGHTS


@dataclass(frozen=True)
class GazeLossConfig:
    """Distance between gaze-encoder features; ``weights`` is an L2CS-Net/ResNet state-dict file or None."""

    encoder: GazeEncoderConfig = field(default_factory=lambda: GAZE_PRESETS["paper"])
    weights: str | None = None
    allow_random_features: bool = False
    distance: GazeDistance = "l1"


def availability(name: str, weights: str | None, allow_random: bool) -> tuple[bool, str]:
    """Whether a feature loss runs, and a human-readable status (logged and recorded by training)."""
    if weights:
        return True, f"{name}: on, features from {weights}"
    if allow_random:
        return True, f"{name}: on with RANDOM features (allow_random_features is set; no weights configured)"
    return False, f"{name}: unavailable: no weights configured (set its weights file, or allow_random_features)"


class PerceptualLoss(nn.Module):
    """VGG19 perceptual loss with its frozen network; ``available`` is False without weights."""

    def __init__(self, cfg: PerceptualLossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.available, self.status = availability("perceptual (VGG19)", cfg.weights, cfg.allow_random_features)
        self.net = VGG19Features(cfg.vgg) if self.available else None
        if self.net is not None and cfg.weights:
            self.net.load_pretrained(cfg.weights)
        log.info(self.status)

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """L1 between VGG features of (B, 3, H, W) real and fake images in [-1, 1]; a scalar."""
        if self.net is None:
            raise RuntimeError(self.status)
        with torch.no_grad():
            real_feats = self.net(real)
        return perceptual_loss(real_feats, self.net(fake), self.cfg.layer_weights)


class GazeLoss(nn.Module):
    """L_gaze through a frozen gaze encoder; ``available`` is False without weights."""

    def __init__(self, cfg: GazeLossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.available, self.status = availability("gaze (L2CS)", cfg.weights, cfg.allow_random_features)
        self.net = GazeEncoder(cfg.encoder) if self.available else None
        if self.net is not None and cfg.weights:
            self.net.load_pretrained(cfg.weights)
        log.info(self.status)

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Distance between gaze features of (B, 3, H, W) real and fake images in [-1, 1]; a scalar."""
        if self.net is None:
            raise RuntimeError(self.status)
        with torch.no_grad():
            real_feat = self.net(real)
        return gaze_loss(real_feat, self.net(fake), self.cfg.distance)
