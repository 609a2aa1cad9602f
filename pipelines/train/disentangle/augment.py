"""LPD's augmentation of the driving frame (docs/paper-notes.md §3; Burkov et al., CVPR 2020), with torchvision v2.

E_v must carry pose and expression but not identity. LPD's recipe, which TH-PAD follows for E_v ("the
pretraining scheme of LPD"), feeds the pose encoder the target frame itself, heavily augmented: a random
subset of up to five pixel operations in random order, then an independent stretch of each axis and a small
shift, with reflected borders. The generator still reconstructs the clean frame, so whatever the encoder
needs must survive the augmentation: geometry of the head does, colour, sharpness and face proportions
(identity cues) do not.

Our subset of LPD's imgaug operations (torchvision has no emboss or simplex edge detection; they are left
out): Gaussian blur, sharpening, additive Gaussian noise, brightness (multiply), contrast, saturation, JPEG
compression (OpenCV's codec) and an elastic warp. Every draw comes from torch's global RNG, so a seeded (and
checkpointed) RNG state replays the augmentation exactly. Frames are drawn independently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

Op = Callable[[torch.Tensor], torch.Tensor]
NUM_PIXEL_OPS = 8  # see pixel_ops


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of LPD's augmentation; ``max_pixel_ops = 0`` and ``affine_prob = 0`` switch it off.

    Pixel values are in [0, 1] here: ``noise_std`` 0.05 is LPD's 0.05 * 255. ``brightness``, ``contrast``
    and ``saturation`` are torchvision factors (1 keeps the frame); ``elastic_alpha`` and ``elastic_sigma``
    are ``v2.ElasticTransform``'s. With probability ``affine_prob`` each, the axes are stretched by
    independent factors from ``scale`` and the frame is shifted by up to ``translate`` of its side.
    ``in_pretraining`` false keeps E_v's pretraining on L_lmk (``pipelines/train/disentangle.py``) on the frames as
    they are; the GAN phase always augments.
    """

    max_pixel_ops: int = 5
    blur_sigma: tuple[float, float] = (0.1, 1.0)
    sharpness: tuple[float, float] = (1.0, 3.0)
    noise_std: tuple[float, float] = (0.0, 0.05)
    brightness: tuple[float, float] = (0.5, 1.5)
    contrast: tuple[float, float] = (0.75, 1.25)
    saturation: tuple[float, float] = (0.7, 1.3)
    jpeg_quality: tuple[int, int] = (70, 99)
    elastic_alpha: float = 3.0
    elastic_sigma: float = 1.0
    affine_prob: float = 0.5
    scale: tuple[float, float] = (0.8, 1.2)
    translate: float = 0.05
    in_pretraining: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.max_pixel_ops <= NUM_PIXEL_OPS:
            raise ValueError(f"augment.max_pixel_ops must be in [0, {NUM_PIXEL_OPS}], got {self.max_pixel_ops}")
        if not 0.0 <= self.affine_prob <= 1.0:
            raise ValueError(f"augment.affine_prob must be in [0, 1], got {self.affine_prob}")
        # Bounds that keep the reflected border thinner than the stretched frame (see stretch_and_shift).
        if not (0.5 <= self.scale[0] <= self.scale[1] <= 2.0 and 0.0 <= self.translate <= 0.2):
            raise ValueError(f"augment needs 0.5 <= scale[0] <= scale[1] <= 2 and translate in [0, 0.2], got {self}")
        if not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError(f"augment.jpeg_quality must be a range within [1, 100], got {self.jpeg_quality}")



def uniform(bounds: tuple[float, float]) -> float:
    """One draw from U(bounds) on torch's global RNG."""
    return float(torch.empty(()).uniform_(bounds[0], bounds[1]))


def _jpeg(quality: tuple[int, int]) -> Op:
    """JPEG compression at a random quality, through OpenCV: torchvision's JPEG codec is deprecated (0.29)."""

    def op(frame: torch.Tensor) -> torch.Tensor:
        q = int(torch.randint(quality[0], quality[1] + 1, ()))
        pixels = frame.mul(255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (S, S, 3) RGB
        _, jpeg = cv2.imencode(".jpg", np.ascontiguousarray(pixels[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, q])
        decoded = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[:, :, ::-1]  # (S, S, 3) RGB
        return torch.from_numpy(np.ascontiguousarray(decoded)).permute(2, 0, 1).float().div(255)  # (3, S, S)

    return op


def _clamped(op: Op) -> Op:
    def clamped(frame: torch.Tensor) -> torch.Tensor:
        return op(frame).clamp(0.0, 1.0)

    return clamped


def pixel_ops(cfg: AugmentConfig) -> list[Op]:
    """The eight pixel operations, each mapping a (3, S, S) frame in [0, 1] to one in [0, 1]."""
    blur_kernel = 2 * math.ceil(2 * cfg.blur_sigma[1]) + 1  # covers +-2 sigma of the widest blur
    return [
        v2.GaussianBlur(blur_kernel, sigma=cfg.blur_sigma),
        _clamped(lambda x: TF.adjust_sharpness(x, uniform(cfg.sharpness))),
        lambda x: TF.gaussian_noise(x, sigma=uniform(cfg.noise_std), clip=True),
        v2.ColorJitter(brightness=cfg.brightness),
        v2.ColorJitter(contrast=cfg.contrast),
        v2.ColorJitter(saturation=cfg.saturation),
        _jpeg(cfg.jpeg_quality),
        _clamped(v2.ElasticTransform(alpha=cfg.elastic_alpha, sigma=cfg.elastic_sigma)),
    ]


def stretch_and_shift(frame: torch.Tensor, sx: float, sy: float, dx: float, dy: float) -> torch.Tensor:
    """Stretch the axes by (sx, sy) about the centre and move the content by (dx, dy) pixels (right, down);
    uncovered borders are reflected, as in LPD.

    Args:
        frame: (C, S, S).
    Returns:
        (C, S, S).
    """
    size = frame.shape[-1]
    h, w = max(1, round(size * sy)), max(1, round(size * sx))
    stretched = TF.resize(frame, [h, w], antialias=True)  # (C, h, w)
    top, left = round((h - size) / 2 - dy), round((w - size) / 2 - dx)
    pads = [max(0, -left), max(0, -top), max(0, left + size - w), max(0, top + size - h)]  # left, top, right, bottom
    padded = TF.pad(stretched, pads, padding_mode="reflect") if any(pads) else stretched
    return TF.crop(padded, top + pads[1], left + pads[0], size, size)  # (C, S, S)


def augment_frame(frame: torch.Tensor, cfg: AugmentConfig, ops: list[Op]) -> torch.Tensor:
    """LPD's augmentation of one (3, S, S) frame in [0, 1]: 0..max_pixel_ops pixel ops in random order,
    then the random stretch and shift."""
    count = int(torch.randint(0, cfg.max_pixel_ops + 1, ()))
    for i in torch.randperm(len(ops))[:count].tolist():
        frame = ops[i](frame)
    size = frame.shape[-1]
    sx = sy = 1.0
    dx = dy = 0.0
    if float(torch.rand(())) < cfg.affine_prob:
        sx, sy = uniform(cfg.scale), uniform(cfg.scale)
    if float(torch.rand(())) < cfg.affine_prob:
        limit = (-cfg.translate * size, cfg.translate * size)
        dx, dy = uniform(limit), uniform(limit)
    if (sx, sy, dx, dy) == (1.0, 1.0, 0.0, 0.0):
        return frame
    return stretch_and_shift(frame, sx, sy, dx, dy)


def augment_frames(frames: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """Augment every frame of a batch independently.

    Args:
        frames: (B, 3, S, S) in [-1, 1].
    Returns:
        (B, 3, S, S) in [-1, 1], on the input's device.
    """
    ops = pixel_ops(cfg)
    unit = frames.detach().float().cpu().add(1.0).div(2.0)  # (B, 3, S, S) in [0, 1]
    out = torch.stack([augment_frame(f, cfg, ops) for f in unit])  # (B, 3, S, S)
    return out.mul(2.0).sub(1.0).to(frames.device, frames.dtype)
