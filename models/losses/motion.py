"""Sequence losses of the motion prior: masked MSE and the velocity loss.

TH-PAD project page (velocity ablation) and docs/paper-notes.md §1.5: L_vel is MDM's MSE between the frame-to-frame
differences of the prediction and of the target; L_a2nl is an MSE on the x0 prediction.
"""

from __future__ import annotations

import torch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the frames where ``mask`` is True (mean over the feature axis).

    Args:
        pred, target: (B, T, N).
        mask: (B, T) bool frames to count; None counts all. An empty mask gives 0.
    Returns:
        scalar loss.
    """
    per_frame = (pred - target).pow(2).mean(dim=-1)  # (B, T)
    if mask is None:
        return per_frame.mean()
    weight = mask.to(per_frame.dtype)  # (B, T)
    return (per_frame * weight).sum() / weight.sum().clamp_min(1.0)


def velocity_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE of frame differences, || (x_{i+1} - x_i) - (y_{i+1} - y_i) ||^2, over pairs of real frames.

    Args:
        pred, target: (B, T, N) sequences.
        valid: (B, T) bool, True on real frames; a pair counts only if both frames are real.
    Returns:
        scalar loss.
    """
    vel_pred = pred[:, 1:] - pred[:, :-1]  # (B, T-1, N)
    vel_target = target[:, 1:] - target[:, :-1]  # (B, T-1, N)
    pair_valid = None if valid is None else valid[:, 1:] & valid[:, :-1]  # (B, T-1)
    return masked_mse(vel_pred, vel_target, pair_valid)
