"""Image reconstruction losses: on features of pretrained networks (VGG perceptual loss and gaze loss), and on
pixels (an image pyramid's L1, which needs no weights file; ours, not the paper's).

TH-PAD supplement Eq. III (L1 between VGG features; PC-AVS layer weights 1/32, 1/16, 1/8, 1/4, 1 on
relu1_1..relu5_1, docs/paper-notes.md §2.6) and L_gaze (distance between gaze-encoder features,
docs/paper-notes.md §1.5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F

VGG_LAYER_WEIGHTS: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

GazeDistance = Literal["l1", "l2"]


def perceptual_loss(
    real_feats: Sequence[torch.Tensor],
    fake_feats: Sequence[torch.Tensor],
    layer_weights: Sequence[float] = VGG_LAYER_WEIGHTS,
) -> torch.Tensor:
    """Weighted sum over layers of the L1 between VGG features of real and generated images (Eq. III).

    Args:
        real_feats, fake_feats: per layer, features (B, C_k, H_k, W_k); real ones are detached.
        layer_weights: one weight per layer.
    Returns:
        scalar loss.
    """
    if not len(real_feats) == len(fake_feats) == len(layer_weights):
        raise ValueError(
            f"got {len(real_feats)} real, {len(fake_feats)} fake layers and {len(layer_weights)} weights"
        )
    pairs = zip(real_feats, fake_feats, layer_weights, strict=True)
    terms = [w * F.l1_loss(fake, real.detach()) for real, fake, w in pairs]
    return torch.stack(terms).sum()


def gaze_loss(
    real_feat: torch.Tensor, fake_feat: torch.Tensor, distance: GazeDistance = "l1"
) -> torch.Tensor:
    """Distance between gaze-encoder features of real and generated frames (L_gaze).

    Args:
        real_feat, fake_feat: (B, D) gaze features (the real ones are detached).
        distance: "l1" (mean absolute error) or "l2" (mean squared error).
    Returns:
        scalar loss.
    """
    if distance == "l1":
        return F.l1_loss(fake_feat, real_feat.detach())
    if distance == "l2":
        return F.mse_loss(fake_feat, real_feat.detach())
    raise ValueError(f"unknown gaze distance '{distance}' (use 'l1' or 'l2')")


def pyramid_l1(real: torch.Tensor, fake: torch.Tensor, scales: int = 1) -> torch.Tensor:
    """Mean over ``scales`` levels of an image pyramid (2x2 average pooling per level) of the pixel L1.

    Level 0 is the pixel L1 itself; coarser levels weigh the low frequencies (pose, the face's outline) again, which
    an L1 on full-resolution pixels alone settles late.

    Args:
        real: (B, C, H, W) targets (detached here); fake: (B, C, H, W) generated images.
        scales: number of levels, >= 1.
    Returns:
        scalar loss.
    """
    if scales < 1:
        raise ValueError(f"scales must be >= 1, got {scales}")
    real, terms = real.detach(), []
    for level in range(scales):
        if level:
            real, fake = F.avg_pool2d(real, 2), F.avg_pool2d(fake, 2)  # (B, C, H/2^level, W/2^level)
        terms.append(F.l1_loss(fake, real))
    return torch.stack(terms).mean()


def box_l1(real: torch.Tensor, fake: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Pixel L1 inside one box per image (the mouth, say), averaged over the boxes' pixels.

    A small region is a few percent of a frame, so in the whole frame's L1 it weighs as little; this term gives it
    a weight of its own. A pixel counts when its centre lies in the box.

    Args:
        real: (B, C, H, W) targets (detached here); fake: (B, C, H, W) generated images.
        boxes: (B, 4) x0, y0, x1, y1 in pixels of these images.
    Returns:
        scalar loss (0 when every box is empty).
    """
    if boxes.shape != (len(real), 4):
        raise ValueError(f"boxes must be ({len(real)}, 4), got {tuple(boxes.shape)}")
    height, width = real.shape[-2:]
    ys = torch.arange(height, device=real.device, dtype=boxes.dtype) + 0.5  # (H,)
    xs = torch.arange(width, device=real.device, dtype=boxes.dtype) + 0.5  # (W,)
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] <= boxes[:, 3:4])  # (B, H)
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] <= boxes[:, 2:3])  # (B, W)
    mask = (inside_y[:, :, None] & inside_x[:, None, :]).to(fake.dtype)[:, None]  # (B, 1, H, W)
    error = (fake - real.detach()).abs() * mask  # (B, C, H, W)
    return error.sum() / (mask.sum() * real.shape[1]).clamp(min=1.0)


def point_l1(predicted: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 between matched points, such as where a warp reads the photo at the driving frame's landmarks and
    the photo's own landmarks.

    Args:
        predicted: (B, N, 2) points; target: (B, N, 2) the same points' true positions (detached here), in the
            same units.
        weights: (N,) non-negative weights of the points (a weighted mean; None: all 1).
    Returns:
        scalar loss.
    """
    if predicted.shape != target.shape or predicted.dim() != 3 or predicted.shape[-1] != 2:
        raise ValueError(f"point_l1 needs two (B, N, 2) tensors, got {tuple(predicted.shape)} and "
                         f"{tuple(target.shape)}")
    error = (predicted - target.detach()).abs().mean(dim=(0, 2))  # (N,)
    if weights is None:
        return error.mean()
    if weights.shape != error.shape or float(weights.min()) < 0 or float(weights.sum()) <= 0:
        raise ValueError(f"point_l1's weights must be ({error.shape[0]},), >= 0 and not all 0")
    return (weights * error).sum() / weights.sum()
