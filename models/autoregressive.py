"""The auto-regressive (AR) baseline prior: next-frame regression of non-lip features, causal transformer.

TH-PAD supplement §I.3: P_a2nl(n_i | n_{k<i}, a_{1:L}) with the same transformer as the diffusion prior but
causal attention, trained with MSE. Training uses teacher forcing (the input at frame i is the ground-truth
frame i-1, a zero start frame at i=0); sampling runs frame by frame and chains 128-frame windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thpad.models.diffusion.chaining import iter_chained_chunks, stitch_chunks
from thpad.models.losses.motion import masked_mse, velocity_loss
from thpad.models.motion_denoiser import MotionDenoiser


@dataclass(frozen=True)
class AutoregressiveConfig:
    """Loss weights of the AR prior (the paper uses the MSE only)."""

    lambda_mse: float = 1.0
    lambda_vel: float = 0.0  # optional velocity term, off in the paper


def _check_causal(model: MotionDenoiser) -> None:
    if not model.cfg.causal:
        raise ValueError("the AR prior needs a causal MotionDenoiser (cfg.causal=True)")


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """Teacher-forcing input (B, T, N): frame i holds x[i-1], frame 0 the zero start frame."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)  # (B, T, N)


def ar_training_loss(
    model: MotionDenoiser,
    cfg: AutoregressiveConfig,
    x0: torch.Tensor,
    audio: torch.Tensor,
    valid: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Next-frame MSE with teacher forcing.

    1. Input = ground truth shifted right by one frame (zero start frame).
    2. The causal transformer predicts every frame i from inputs 0..i and audio 0..i (no timestep).
    3. MSE to the ground truth over real frames (+ optional velocity MSE).
    Args:
        x0: (B, T, N) ground-truth non-lip features; audio: (B, T, A); valid: (B, T) bool real frames.
    Returns:
        dict with "loss" (weighted total), "mse" and "vel", all scalars.
    """
    _check_causal(model)
    pred = model(shift_right(x0), None, audio, valid=valid)  # (B, T, N)
    mse = masked_mse(pred, x0, valid)
    vel = velocity_loss(pred, x0, valid)
    total = cfg.lambda_mse * mse + cfg.lambda_vel * vel
    return {"loss": total, "mse": mse.detach(), "vel": vel.detach()}


@torch.no_grad()
def ar_sample(
    model: MotionDenoiser,
    audio: torch.Tensor,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate one window frame by frame (deterministic: the AR prior is a point regressor).

    1. Frame 0 sees the zero start frame; frame i sees the outputs 0..i-1.
    2. Where ``known_mask`` is set, the output is the known value, which is then fed to the next frame.
    Args:
        audio: (B, T, A), T <= max_frames; known_mask: (B, T) bool; known: (B, T, N).
    Returns:
        (B, T, N) non-lip features, equal to ``known`` where ``known_mask`` is True.
    """
    _check_causal(model)
    B, T, _ = audio.shape
    N = model.cfg.nl_dim
    inputs = audio.new_zeros(B, T, N)  # (B, T, N) shifted outputs, zero start frame
    out = audio.new_zeros(B, T, N)  # (B, T, N)
    for i in range(T):
        # The model is causal, so running it on the prefix gives the same frame i as on the full window.
        frame = model(inputs[:, : i + 1], None, audio[:, : i + 1])[:, i]  # (B, N)
        if known_mask is not None and known is not None:
            frame = torch.where(known_mask[:, i, None], known[:, i], frame)  # (B, N)
        out[:, i] = frame
        if i + 1 < T:
            inputs[:, i + 1] = frame
    return out


@torch.no_grad()
def ar_sample_long(
    model: MotionDenoiser,
    audio: torch.Tensor,
    window: int,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generate any length in chained windows; each window starts from the previous window's last frame.

    Args:
        audio: (B, L, A); window: chunk length (<= max_frames); known_mask: (B, L); known: (B, L, N).
    Returns:
        (B, L, N) non-lip features.
    """

    def one_window(a: torch.Tensor, m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return ar_sample(model, a, m, k)

    chunks = list(iter_chained_chunks(one_window, audio, model.cfg.nl_dim, window, known_mask, known))
    return stitch_chunks(chunks)
