"""Gaze encoder for L_gaze, after L2CS-Net (Abdelrahman et al. 2022; docs/paper-notes.md §5).

TH-PAD compares "the last 512-d feature" of the gaze encoder on generated and real frames. L2CS-Net
is a torchvision ResNet with global average pooling and two angle-bin heads; its released weights
are ResNet-50, whose pooled feature is 2048-d, while 512-d matches only its ResNet-18/34 variants.
We default to ResNet-18 so the pooled feature is 512-d as the supplement states, and allow ResNet-50
(2048-d) for the released weights. The angle heads are not built; their keys are ignored on load.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from thpad.models.pretrained import PretrainedSpec, imagenet_normalize, load_pretrained
from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class GazeEncoderConfig:
    """Backbone of the gaze encoder.

    ``input_size`` resizes inputs first: L2CS-Net was trained on 448×448 face crops, so the paper
    preset upsamples the 224 frames to 448 [I]; None feeds the frames as they are (tiny).
    """

    block: Literal["basic", "bottleneck"] = "basic"
    blocks: tuple[int, int, int, int] = (2, 2, 2, 2)  # ResNet-18
    input_size: int | None = 448

    @property
    def feature_dim(self) -> int:
        """Pooled feature width: 512 for basic blocks (ResNet-18/34), 2048 for bottlenecks (ResNet-50+)."""
        return 512 * (BasicBlock.expansion if self.block == "basic" else Bottleneck.expansion)


GAZE_PRESETS: dict[str, GazeEncoderConfig] = {
    "paper": GazeEncoderConfig(),
    "l2cs_resnet50": GazeEncoderConfig(block="bottleneck", blocks=(3, 4, 6, 3)),
    "tiny": GazeEncoderConfig(blocks=(1, 1, 1, 1), input_size=None),
}


class GazeEncoder(nn.Module):
    """Frozen L2CS-style ResNet returning the globally pooled feature."""

    pretrained_spec: ClassVar[PretrainedSpec] = PretrainedSpec(
        prefix="backbone.", ignore=("fc.*", "fc_yaw_gaze.*", "fc_pitch_gaze.*", "fc_finetune.*")
    )

    def __init__(self, cfg: GazeEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        self.backbone = ResNet(block, list(cfg.blocks))
        self.backbone.fc = nn.Identity()  # the angle-bin heads are not needed for the feature loss
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> GazeEncoder:
        """Stay in eval mode (BatchNorm uses its running statistics): this is a fixed loss network."""
        return super().train(False)

    def load_pretrained(self, path: str | None) -> bool:
        """Load L2CS-Net (or torchvision ResNet) weights; the gaze/classifier heads are dropped."""
        return load_pretrained(self, path, self.pretrained_spec)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled gaze feature.

        Args:
            images: (B, 3, H, W) face crops in [-1, 1].
        Returns:
            (B, feature_dim) feature (512 for ResNet-18).
        """
        assert_shape(images, (None, 3, None, None), "gaze input")
        if self.cfg.input_size is not None:
            size = (self.cfg.input_size, self.cfg.input_size)
            images = F.interpolate(images, size=size, mode="bilinear", align_corners=False)  # (B, 3, S, S)
        return self.backbone(imagenet_normalize(images))  # (B, feature_dim)
