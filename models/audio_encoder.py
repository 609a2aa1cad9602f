"""Audio encoder E_a: a ResNetSE34V2-style network over one 0.2 s mel window (docs/paper-notes.md §4).

TH-PAD uses "a ResNet34 encoder from *In defence of metric learning*" (supplement §I.2). As in the
sibling systems PC-AVS and PD-FGC, we read it as voxceleb_trainer's ResNetSE34V2 (H/ASP) fed the
PC-AVS 80-bin normalised mel directly: squeeze-excitation basic blocks, widths 32/64/128/256,
attentive pooling over time and a final FC to the 512-d audio feature f_a.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class AudioEncoderConfig:
    """Sizes of E_a. ``pooling`` is SAP (PC-AVS's choice, default) or ASP (mean and std)."""

    n_mels: int = 80
    n_frames: int = 20  # 0.2 s at 100 mel frames/s: 5 video frames × 4 mel frames
    channels: tuple[int, int, int, int] = (32, 64, 128, 256)
    blocks: tuple[int, int, int, int] = (3, 4, 6, 3)
    strides: tuple[int, int, int, int] = (1, 2, 2, 2)
    se_reduction: int = 8
    attention_dim: int = 128
    pooling: Literal["sap", "asp"] = "sap"
    out_dim: int = 512


AUDIO_PRESETS: dict[str, AudioEncoderConfig] = {
    "paper": AudioEncoderConfig(),
    "tiny": AudioEncoderConfig(channels=(8, 16, 32, 32), blocks=(1, 1, 1, 1), attention_dim=32, out_dim=32),
}


class SqueezeExcite(nn.Module):
    """Channel re-weighting from globally pooled features (squeeze-and-excitation)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.fc = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc(x.mean(dim=(2, 3)))  # (B, C)
        return x * w[:, :, None, None]  # (B, C, F, T)


class SEBasicBlock(nn.Module):
    """conv3×3 → ReLU → BN → conv3×3 → BN → SE → add residual → ReLU (voxceleb_trainer's order)."""

    def __init__(self, in_channels: int, channels: int, stride: int, reduction: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.se = SqueezeExcite(channels, reduction)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.relu(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.relu(out + self.downsample(x))


class AudioEncoder(nn.Module):
    """E_a: mel window (B, 1, n_mels, n_frames) → audio feature f_a (B, out_dim)."""

    def __init__(self, cfg: AudioEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(
            nn.Conv2d(1, cfg.channels[0], 3, padding=1),
            nn.ReLU(inplace=True),
            nn.BatchNorm2d(cfg.channels[0]),
        )
        layers, in_ch = [], cfg.channels[0]
        for ch, n, stride in zip(cfg.channels, cfg.blocks, cfg.strides, strict=True):
            blocks = [SEBasicBlock(in_ch if i == 0 else ch, ch, stride if i == 0 else 1, cfg.se_reduction)
                      for i in range(n)]
            layers.append(nn.Sequential(*blocks))
            in_ch = ch
        self.layers = nn.Sequential(*layers)
        width = cfg.channels[-1] * self._reduced_mels()
        self.attention = nn.Sequential(
            nn.Conv1d(width, cfg.attention_dim, 1), nn.ReLU(inplace=True), nn.BatchNorm1d(cfg.attention_dim),
            nn.Conv1d(cfg.attention_dim, width, 1), nn.Softmax(dim=2),
        )
        self.fc = nn.Linear(width * (2 if cfg.pooling == "asp" else 1), cfg.out_dim)

    def _reduced_mels(self) -> int:
        n = self.cfg.n_mels
        for s in self.cfg.strides:
            n = (n - 1) // s + 1  # 3×3 conv, padding 1
        return n

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """Encode one mel window per sample.

        Args:
            mel: (B, 1, n_mels, n_frames) normalised mel spectrogram window.
        Returns:
            f_a: (B, out_dim).
        """
        cfg = self.cfg
        assert_shape(mel, (None, 1, cfg.n_mels, cfg.n_frames), "mel window")
        x = self.layers(self.stem(mel))  # (B, C, F', T')
        x = x.flatten(1, 2)  # (B, C*F', T')
        w = self.attention(x)  # (B, C*F', T'), softmax over time
        mu = (x * w).sum(dim=2)  # (B, C*F')
        if cfg.pooling == "asp":
            sigma = ((x * x * w).sum(dim=2) - mu * mu).clamp(min=1e-5).sqrt()  # (B, C*F')
            mu = torch.cat([mu, sigma], dim=1)  # (B, 2*C*F')
        return self.fc(mu)  # (B, out_dim)
