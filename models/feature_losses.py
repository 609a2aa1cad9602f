"""Losses computed through a pretrained network (VGG19 perceptual loss, L2CS-style gaze loss), with
their availability: without a weights file such a loss is off and reports itself unavailable with the
reason, unless ``allow_random_features`` asks for a loss through random, untrained features.

Random features are a deliberate, documented choice, never a silent fallback: a loss through an
untrained network measures something, but not what the paper's loss measures.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from thpad.models.gaze import GAZE_PRESETS, GazeEncoder, GazeEncoderConfig
from thpad.models.losses import VGG_LAYER_WEIGHTS, GazeDistance, gaze_loss, perceptual_loss
from thpad.models.vgg import VGG_PRESETS, VGG19Features, VGGConfig

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


class FeatureLoss(nn.Module):
    """A loss through a frozen pretrained network; off (``available`` False) without its weights."""

    def __init__(self, name: str, build: Callable[[], nn.Module], weights: str | None, allow_random: bool) -> None:
        super().__init__()
        self.available, self.status = availability(name, weights, allow_random)
        self.net = build() if self.available else None
        if self.net is not None and weights:
            self.net.load_pretrained(weights)
        log.info(self.status)

    def distance(self, real_feats: Any, fake_feats: Any) -> torch.Tensor:
        """The loss between the network's outputs for real and fake images."""
        raise NotImplementedError

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """The loss between (B, 3, H, W) real and fake images in [-1, 1]; a scalar."""
        if self.net is None:
            raise RuntimeError(self.status)
        with torch.no_grad():
            real_feats = self.net(real)
        return self.distance(real_feats, self.net(fake))


class PerceptualLoss(FeatureLoss):
    """VGG19 perceptual L1 with per-layer weights."""

    def __init__(self, cfg: PerceptualLossConfig) -> None:
        super().__init__("perceptual (VGG19)", lambda: VGG19Features(cfg.vgg), cfg.weights, cfg.allow_random_features)
        self.cfg = cfg

    def distance(self, real_feats: list[torch.Tensor], fake_feats: list[torch.Tensor]) -> torch.Tensor:
        return perceptual_loss(real_feats, fake_feats, self.cfg.layer_weights)


class GazeLoss(FeatureLoss):
    """L_gaze: a distance between gaze-encoder features."""

    def __init__(self, cfg: GazeLossConfig) -> None:
        super().__init__("gaze (L2CS)", lambda: GazeEncoder(cfg.encoder), cfg.weights, cfg.allow_random_features)
        self.cfg = cfg

    def distance(self, real_feats: torch.Tensor, fake_feats: torch.Tensor) -> torch.Tensor:
        return gaze_loss(real_feats, fake_feats, self.cfg.distance)
