"""Two-scale PatchGAN discriminator D, as used by PC-AVS (docs/paper-notes.md §2.5) and hence TH-PAD.

Each scale is a pix2pixHD NLayer discriminator: 4×4 convs (stride 2 except the last inner one),
spectral norm + instance norm on the inner layers, LeakyReLU 0.2 and a 1-channel patch output. The
second scale sees the image average-pooled 3×3 with stride 2. Each scale returns its intermediate
features with the input image as feature 0, so feature matching includes a pixel L1 term, as in
PC-AVS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Sizes of the multi-scale PatchGAN (PC-AVS defaults: 2 scales, 4 layers, ndf 64)."""

    num_scales: int = 2
    n_layers: int = 4
    ndf: int = 64
    max_channels: int = 512
    in_channels: int = 3
    kernel_size: int = 4


DISCRIMINATOR_PRESETS: dict[str, DiscriminatorConfig] = {
    "paper": DiscriminatorConfig(),
    "tiny": DiscriminatorConfig(ndf=8, max_channels=32),
}


class ScaleOutput(NamedTuple):
    """One scale's output: features for matching (input image first) and the patch logits."""

    features: list[torch.Tensor]
    logits: torch.Tensor  # (B, 1, h, w)


class PatchDiscriminator(nn.Module):
    """One NLayer PatchGAN scale."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        k, pad = cfg.kernel_size, math.ceil((cfg.kernel_size - 1) / 2)
        nf = cfg.ndf
        blocks: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(cfg.in_channels, nf, k, stride=2, padding=pad), nn.LeakyReLU(0.2))
        ]
        for n in range(1, cfg.n_layers):
            nf_prev, nf = nf, min(nf * 2, cfg.max_channels)
            stride = 1 if n == cfg.n_layers - 1 else 2
            conv = spectral_norm(nn.Conv2d(nf_prev, nf, k, stride=stride, padding=pad, bias=False))
            blocks.append(nn.Sequential(conv, nn.InstanceNorm2d(nf, affine=False), nn.LeakyReLU(0.2)))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Conv2d(nf, 1, k, stride=1, padding=pad)

    def forward(self, x: torch.Tensor) -> ScaleOutput:
        features = [x]
        for block in self.blocks:
            features.append(block(features[-1]))
        return ScaleOutput(features=features, logits=self.head(features[-1]))


class MultiscaleDiscriminator(nn.Module):
    """D: the same PatchGAN at full and half resolution."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scales = nn.ModuleList(PatchDiscriminator(cfg) for _ in range(cfg.num_scales))

    def forward(self, images: torch.Tensor) -> list[ScaleOutput]:
        """Score images at every scale.

        Args:
            images: (B, in_channels, H, W) in [-1, 1].
        Returns:
            One ScaleOutput per scale (full resolution first); features[0] is that scale's input.
        """
        assert_shape(images, (None, self.cfg.in_channels, None, None), "discriminator input")
        outputs = []
        for i, scale in enumerate(self.scales):
            if i > 0:
                # (B, C, H/2, W/2)
                images = F.avg_pool2d(images, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(scale(images))
        return outputs
