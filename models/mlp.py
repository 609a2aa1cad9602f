"""The small MLP heads that map encoder features into motion subspaces (TH-PAD supplement §I.2).

TH-PAD names four heads: MLP_ol and MLP_cl ("512×512") after the visual encoder E_v, MLP_nl
("512×42") after MLP_ol, and MLP_a2l ("512×470") after the audio encoder E_a. The supplement gives
only their sizes, so we follow the parent code (PC-AVS, PD-FGC), where a "to_X" mapper is
Linear(512, 512)-ReLU-Linear(512, 512) and the following "X_embed" is ReLU-Linear(512, d):

* ``MLPConfig(in_dim, out_dim, hidden_dim=512)`` is the two-layer mapper (MLP_ol, MLP_cl);
* ``MLPConfig(in_dim, out_dim, hidden_dim=None, input_relu=True)`` is the one-layer embed
  (MLP_nl, MLP_a2l), which reads the un-activated output of a mapper or of E_a, hence the ReLU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of one MLP head; ``hidden_dim=None`` means a single linear layer (a PC-AVS "embed")."""

    in_dim: int = 512
    out_dim: int = 512
    hidden_dim: int | None = 512
    input_relu: bool = False  # ReLU before the first Linear, as in PC-AVS's X_embed heads

    def __post_init__(self) -> None:
        if self.in_dim <= 0 or self.out_dim <= 0 or (self.hidden_dim is not None and self.hidden_dim <= 0):
            raise ValueError(f"MLPConfig sizes must be positive: {self}")


# Reference sizes: the 512×512 mapper (MLP_ol, MLP_cl) and a narrow one for tests.
MLP_PRESETS: dict[str, MLPConfig] = {
    "paper": MLPConfig(in_dim=512, out_dim=512, hidden_dim=512),
    "tiny": MLPConfig(in_dim=32, out_dim=32, hidden_dim=32),
}


class MLP(nn.Module):
    """[ReLU] → Linear(in, hidden) → ReLU → Linear(hidden, out), or [ReLU] → Linear(in, out)."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = [nn.ReLU()] if cfg.input_relu else []
        if cfg.hidden_dim is None:
            layers.append(nn.Linear(cfg.in_dim, cfg.out_dim))
        else:
            hidden = cfg.hidden_dim
            layers += [nn.Linear(cfg.in_dim, hidden), nn.ReLU(), nn.Linear(hidden, cfg.out_dim)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map features.

        Args:
            x: (B, in_dim) input features.
        Returns:
            (B, out_dim) output features.
        """
        assert_shape(x, (None, self.cfg.in_dim), "MLP input")
        return self.net(x)
