"""StyleGAN2 building blocks used by the TH-PAD generator (Karras et al., CVPR 2020).

TH-PAD's generator is "borrowed from StyleGAN2 with the same modulated convolution as PC-AVS"
(supplement §I.2), i.e. rosinality's PyTorch port: equalized learning rate, weight modulation and
demodulation, noise injection, bias + leaky ReLU scaled by √2, FIR blur around upsampling, and ToRGB
layers summed over resolutions. Everything here is plain PyTorch (no custom CUDA kernels).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

NoiseMode = Literal["random", "none"]


def make_kernel(taps: tuple[int, ...]) -> torch.Tensor:
    """Separable FIR kernel from 1-D taps, normalised to sum 1. Returns (k, k)."""
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]  # (k, k)
    return k / k.sum()


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Zero-insert upsample by ``up``, pad, then filter every channel with ``kernel``.

    Args:
        x: (B, C, H, W).
        kernel: (k, k) symmetric FIR filter.
        up: upsampling factor.
        pad: (before, after) padding applied to both spatial axes after upsampling.
    Returns:
        (B, C, H*up + pad[0] + pad[1] - k + 1, same for W).
    """
    B, C, H, W = x.shape
    if up > 1:
        x = x.reshape(B, C, H, 1, W, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))  # (B, C, H, up, W, up)
        x = x.reshape(B, C, H * up, W * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.to(x)[None, None].expand(C, 1, *kernel.shape)  # (C, 1, k, k); symmetric, no flip
    return F.conv2d(x, weight, groups=C)


class Blur(nn.Module):
    """FIR low-pass filter with a fixed kernel (optionally scaled to keep gain after upsampling)."""

    def __init__(self, taps: tuple[int, ...], pad: tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * gain, persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """×2 upsampling by zero insertion and FIR filtering (for the ToRGB skip path)."""

    def __init__(self, taps: tuple[int, ...], factor: int = 2) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(taps) * factor**2, persistent=False)
        p = len(taps) - factor
        self.factor, self.pad = factor, ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)  # (B, C, 2H, 2W)


class FusedLeakyReLU(nn.Module):
    """Per-channel bias, leaky ReLU (slope 0.2), then ×√2 to keep unit gain."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.view(1, -1, *([1] * (x.ndim - 2)))
        return F.leaky_relu(x + bias, 0.2) * math.sqrt(2)


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (weights scaled at run time by 1/√in · lr_mul)."""

    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale, self.lr_mul = lr_mul / math.sqrt(in_dim), lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class NoiseInjection(nn.Module):
    """Adds per-pixel Gaussian noise scaled by one learned weight (initialised to 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, mode: NoiseMode = "random") -> torch.Tensor:
        if mode == "none":
            return x
        B, _, H, W = x.shape
        return x + self.weight * torch.randn(B, 1, H, W, device=x.device, dtype=x.dtype)


class ModulatedConv2d(nn.Module):
    """Conv whose weights are scaled per sample by a style (and demodulated), optionally upsampling ×2."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, *,
        demodulate: bool = True, upsample: bool = False, blur_taps: tuple[int, ...] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.scale = 1 / math.sqrt(in_ch * kernel_size**2)
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.demodulate, self.upsample, self.padding = demodulate, upsample, kernel_size // 2
        if upsample:  # transposed conv (stride 2) then blur back to exactly 2H × 2W
            p = (len(blur_taps) - 2) - (kernel_size - 1)
            self.blur = Blur(blur_taps, pad=((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        s = self.modulation(style)  # (B, in_ch)
        weight = self.scale * self.weight * s[:, None, :, None, None]  # (B, out, in, k, k)
        if self.demodulate:
            demod = torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4)) + 1e-8)  # (B, out)
            weight = weight * demod[:, :, None, None, None]
        out_ch, k = weight.shape[1], weight.shape[-1]
        x = x.reshape(1, B * C, H, W)  # (1, B*in, H, W): one grouped conv for the whole batch
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(B * C, out_ch, k, k)  # (B*in, out, k, k)
            x = F.conv_transpose2d(x, weight, stride=2, groups=B)  # (1, B*out, 2H+1, 2W+1)
            return self.blur(x.reshape(B, out_ch, *x.shape[2:]))  # (B, out, 2H, 2W)
        x = F.conv2d(x, weight.reshape(B * out_ch, C, k, k), padding=self.padding, groups=B)
        return x.reshape(B, out_ch, H, W)  # (B, out, H, W)


class StyledConv(nn.Module):
    """Modulated 3×3 conv → noise → bias + leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, *,
                 upsample: bool = False, blur_taps: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(
            in_ch, out_ch, kernel_size, style_dim, upsample=upsample, blur_taps=blur_taps
        )
        self.noise = NoiseInjection()
        self.act = FusedLeakyReLU(out_ch)

    def forward(self, x: torch.Tensor, style: torch.Tensor, noise_mode: NoiseMode = "random") -> torch.Tensor:
        return self.act(self.noise(self.conv(x, style), noise_mode))


class ToRGB(nn.Module):
    """1×1 modulated conv (no demodulation) to RGB, added to the upsampled previous RGB skip."""

    def __init__(self, in_ch: int, style_dim: int, out_ch: int = 3, *, upsample: bool = True,
                 blur_taps: tuple[int, ...] = (1, 3, 3, 1)) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        self.upsample = Upsample(blur_taps) if upsample else None

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        rgb = self.conv(x, style) + self.bias  # (B, 3, H, W)
        if skip is not None:
            rgb = rgb + (skip if self.upsample is None else self.upsample(skip))  # skip → (B, 3, H, W)
        return rgb
