"""Visual (non-identity) encoder E_v with its heads MLP_ol, MLP_cl and MLP_nl (TH-PAD supplement §I.2).

E_v is a MobileNetV2 "following the pretraining scheme of LPD" whose classifier outputs the 512-d
visual feature f_v (LPD used 256; TH-PAD's 512×512 heads imply 512). MLP_cl projects f_v into the
space contrasted with the audio feature (L_cl), MLP_ol into the space kept orthogonal to audio (L_ol),
and MLP_nl maps f_ol to the 42-d non-lip code f_nl that the diffusion prior models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import torch
from torch import nn
from torchvision.models import mobilenet_v2

from thpad.models.mlp import MLP, MLPConfig
from thpad.models.pretrained import PretrainedSpec, imagenet_normalize, load_pretrained
from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class VisualEncoderConfig:
    """Sizes of E_v and its three heads; MLP forms follow PC-AVS (see models/mlp.py).

    ``dropout`` is torchvision's MobileNetV2 classifier dropout (0.2), kept as LPD used the stock
    network. ``nl.out_dim`` is the non-lip width, 42 in every preset (the prior's data space).
    """

    image_size: int = 224
    width_mult: float = 1.0
    feature_dim: int = 512
    dropout: float = 0.2
    ol: MLPConfig = field(default_factory=lambda: MLPConfig(512, 512, hidden_dim=512))
    cl: MLPConfig = field(default_factory=lambda: MLPConfig(512, 512, hidden_dim=512))
    nl: MLPConfig = field(default_factory=lambda: MLPConfig(512, 42, hidden_dim=None, input_relu=True))

    def __post_init__(self) -> None:
        for name, head in (("ol", self.ol), ("cl", self.cl)):
            if head.in_dim != self.feature_dim:
                raise ValueError(f"visual.{name}.in_dim {head.in_dim} != feature_dim {self.feature_dim}")
        if self.nl.in_dim != self.ol.out_dim:
            raise ValueError(f"visual.nl.in_dim {self.nl.in_dim} != ol.out_dim {self.ol.out_dim}")


VISUAL_PRESETS: dict[str, VisualEncoderConfig] = {
    "paper": VisualEncoderConfig(),
    "tiny": VisualEncoderConfig(
        image_size=56, width_mult=0.25, feature_dim=32, dropout=0.0,
        ol=MLPConfig(32, 32, hidden_dim=32), cl=MLPConfig(32, 32, hidden_dim=32),
        nl=MLPConfig(32, 42, hidden_dim=None, input_relu=True),
    ),
}


class VisualFeatures(NamedTuple):
    """E_v's outputs for one batch of driving frames."""

    f_v: torch.Tensor  # (B, feature_dim)
    f_ol: torch.Tensor  # (B, ol.out_dim)
    f_cl: torch.Tensor  # (B, cl.out_dim)
    f_nl: torch.Tensor  # (B, 42)


class VisualEncoder(nn.Module):
    """E_v (MobileNetV2) plus the heads MLP_ol, MLP_cl and MLP_nl."""

    pretrained_spec: ClassVar[PretrainedSpec] = PretrainedSpec(
        prefix="backbone.", ignore=("classifier.*",), new=("backbone.classifier.*", "mlp_*")
    )

    def __init__(self, cfg: VisualEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = mobilenet_v2(
            weights=None, num_classes=cfg.feature_dim, width_mult=cfg.width_mult, dropout=cfg.dropout
        )
        self.mlp_ol = MLP(cfg.ol)
        self.mlp_cl = MLP(cfg.cl)
        self.mlp_nl = MLP(cfg.nl)

    def load_pretrained(self, path: str | None) -> bool:
        """Load torchvision-layout MobileNetV2 weights (classifier dropped, new); None keeps random init."""
        return load_pretrained(self, path, self.pretrained_spec)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """E_v alone.

        Args:
            frames: (B, 3, H, W) driving frames in [-1, 1].
        Returns:
            f_v: (B, feature_dim).
        """
        size = self.cfg.image_size
        assert_shape(frames, (None, 3, size, size), "driving frames")
        return self.backbone(imagenet_normalize(frames))  # (B, feature_dim)

    def forward(self, frames: torch.Tensor) -> VisualFeatures:
        """E_v and all heads.

        Args:
            frames: (B, 3, H, W) driving frames in [-1, 1].
        Returns:
            VisualFeatures with f_v (B, 512), f_ol (B, 512), f_cl (B, 512), f_nl (B, 42) (paper sizes).
        """
        f_v = self.encode(frames)
        f_ol = self.mlp_ol(f_v)
        return VisualFeatures(f_v=f_v, f_ol=f_ol, f_cl=self.mlp_cl(f_v), f_nl=self.mlp_nl(f_ol))
