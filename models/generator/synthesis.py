"""TH-PAD's image generator G: StyleGAN2 synthesis started from the identity feature map.

As in PC-AVS (docs/paper-notes.md §2.4), the mapping network is not used: the concatenated feature
f_cat = cat(f_id, f_nl, f_l) (2560-d in the paper) is the style of every modulated conv, and the
learned constant input is replaced by E_id's 512×7×7 map. A 7×7 StyledConv + ToRGB is followed by
one stage per doubling (upsampling StyledConv, StyledConv, ToRGB with upsampled skip); 7→224 takes
five stages. The summed RGB goes through tanh.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thpad.models.generator.layers import NoiseMode, StyledConv, ToRGB
from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class GeneratorConfig:
    """Channels per resolution, starting at ``start_size``; each further entry doubles the size.

    The style width is not stored here: it is derived once, in ``TalkingHeadConfig.style_dim``, and
    passed to ``Generator``. ``channels[0]`` must equal the identity map's channel count.
    """

    start_size: int = 7
    channels: tuple[int, ...] = (512, 512, 512, 512, 256, 128)  # 7, 14, 28, 56, 112, 224
    kernel_size: int = 3
    blur_taps: tuple[int, ...] = (1, 3, 3, 1)
    out_channels: int = 3

    @property
    def out_size(self) -> int:
        """Output side length: start_size × 2^(number of stages)."""
        return self.start_size * 2 ** (len(self.channels) - 1)


GENERATOR_PRESETS: dict[str, GeneratorConfig] = {
    "paper": GeneratorConfig(),
    "tiny": GeneratorConfig(channels=(32, 32, 24, 16)),  # 7 → 14 → 28 → 56
}


class GeneratorStage(nn.Module):
    """One resolution doubling: upsampling StyledConv, StyledConv, ToRGB with upsampled skip."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, cfg: GeneratorConfig) -> None:
        super().__init__()
        k, taps = cfg.kernel_size, cfg.blur_taps
        self.conv_up = StyledConv(in_ch, out_ch, k, style_dim, upsample=True, blur_taps=taps)
        self.conv = StyledConv(out_ch, out_ch, k, style_dim, blur_taps=taps)
        self.to_rgb = ToRGB(out_ch, style_dim, cfg.out_channels, blur_taps=taps)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, style: torch.Tensor, noise_mode: NoiseMode
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv(self.conv_up(x, style, noise_mode), style, noise_mode)  # (B, out_ch, 2H, 2W)
        return x, self.to_rgb(x, style, skip)  # rgb: (B, 3, 2H, 2W)


class Generator(nn.Module):
    """G: identity map and style vector → image in [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig, style_dim: int) -> None:
        super().__init__()
        self.cfg, self.style_dim = cfg, style_dim
        c0 = cfg.channels[0]
        self.conv1 = StyledConv(c0, c0, cfg.kernel_size, style_dim, blur_taps=cfg.blur_taps)
        self.to_rgb1 = ToRGB(c0, style_dim, cfg.out_channels, upsample=False, blur_taps=cfg.blur_taps)
        pairs = zip(cfg.channels[:-1], cfg.channels[1:], strict=True)
        self.stages = nn.ModuleList(GeneratorStage(cin, cout, style_dim, cfg) for cin, cout in pairs)

    def forward(
        self, id_map: torch.Tensor, style: torch.Tensor, noise_mode: NoiseMode = "random"
    ) -> torch.Tensor:
        """Synthesise images; the same style vector modulates every layer.

        Args:
            id_map: (B, channels[0], start_size, start_size) identity feature map from E_id.
            style: (B, style_dim) f_cat.
            noise_mode: "random" draws fresh noise per layer; "none" disables noise.
        Returns:
            (B, out_channels, out_size, out_size) images in [-1, 1].
        """
        cfg = self.cfg
        B = style.shape[0]
        assert_shape(style, (B, self.style_dim), "style")
        assert_shape(id_map, (B, cfg.channels[0], cfg.start_size, cfg.start_size), "id_map")
        x = self.conv1(id_map, style, noise_mode)  # (B, C0, 7, 7)
        skip = self.to_rgb1(x, style)  # (B, 3, 7, 7)
        for stage in self.stages:
            x, skip = stage(x, skip, style, noise_mode)
        return torch.tanh(skip)  # (B, 3, out_size, out_size)
