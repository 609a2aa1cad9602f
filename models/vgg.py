"""VGG19 feature extractor for the perceptual loss L_VGG (TH-PAD supplement Eq. III; PC-AVS §2.6).

Returns relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1 for images in [-1, 1], normalised to the
ImageNet statistics VGG was trained with. The layers are built with torchvision's VGG ``make_layers``
on the VGG19 layout (channel widths scaled by ``width_mult`` for the tiny preset) so the keys match a
torchvision ``vgg19`` weights file; the layers after relu5_1 and the classifier are not built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from thpad.models.pretrained import PretrainedSpec, imagenet_normalize, load_pretrained
from thpad.models.shapes import assert_shape

# End indices (exclusive) of the five slices in torchvision's vgg19().features: relu1_1 .. relu5_1.
_SLICE_ENDS = (2, 7, 12, 21, 30)
_VGG19_FEATURE_LAYERS = 37


@dataclass(frozen=True)
class VGGConfig:
    """Width of the VGG19 loss network; ``width_mult`` < 1 only for fast tests (no weights then)."""

    width_mult: float = 1.0


VGG_PRESETS: dict[str, VGGConfig] = {
    "paper": VGGConfig(),
    "tiny": VGGConfig(width_mult=0.125),
}


class VGG19Features(nn.Module):
    """Frozen VGG19 trunk returning the five relu*_1 feature maps."""

    pretrained_spec: ClassVar[PretrainedSpec] = PretrainedSpec(
        ignore=("classifier.*",)
        + tuple(f"features.{i}.*" for i in range(_SLICE_ENDS[-1], _VGG19_FEATURE_LAYERS))
    )

    def __init__(self, cfg: VGGConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layout = [v if v == "M" else max(1, round(int(v) * cfg.width_mult)) for v in cfgs["E"]]
        self.features = make_layers(layout)[: _SLICE_ENDS[-1]]  # keeps torchvision's indices as keys
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Stay in eval mode: this is a fixed loss network."""
        return super().train(False)

    def load_pretrained(self, path: str | None) -> bool:
        """Load a torchvision vgg19 weights file (classifier and layers past relu5_1 dropped)."""
        return load_pretrained(self, path, self.pretrained_spec)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Extract features.

        Args:
            images: (B, 3, H, W) in [-1, 1].
        Returns:
            [relu1_1 (B, 64, H, W), relu2_1 (B, 128, H/2, W/2), relu3_1, relu4_1,
             relu5_1 (B, 512, H/16, W/16)] (paper widths).
        """
        assert_shape(images, (None, 3, None, None), "VGG input")
        x, outputs, start = imagenet_normalize(images), [], 0
        for end in _SLICE_ENDS:
            for i in range(start, end):
                x = self.features[i](x)
            outputs.append(x)
            start = end
        return outputs
