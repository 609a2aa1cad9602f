"""Noise schedule, forward process and training loss of the audio-to-non-lip diffusion prior.

TH-PAD supplement §I.3/§I.4 (docs/paper-notes.md §1.6): a discrete DDPM with T=1000 steps, a cosine schedule
(Nichol & Dhariwal 2021) and ``sigma_small`` posterior variance; the network predicts x0 and is trained with
MSE plus a velocity term; 10% of the frames are given as known clean frames (mask editing); condition
dropout enables classifier-free guidance. The network is any callable with the ``Denoiser`` signature.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

import torch

from thpad.models.losses.motion import masked_mse, velocity_loss


@dataclass(frozen=True)
class DiffusionConfig:
    """Training-time settings of the discrete diffusion process."""

    num_steps: int = 1000  # T
    schedule: Literal["cosine", "linear"] = "cosine"
    cosine_s: float = 0.008  # offset s of the cosine schedule
    max_beta: float = 0.999  # betas are clipped here
    posterior_variance: Literal["small", "large"] = "small"  # sigma_small (MDM default) or beta_t
    cond_dropout: float = 0.1  # probability of dropping the audio of a sample (for CFG)
    mask_frac: float = 0.1  # per-frame probability that a frame is given as a known clean frame
    mask_apply_prob: float = 1.0  # probability that a sample gets known frames at all (1 = paper)
    lambda_x0: float = 1.0
    lambda_vel: float = 1.0


class Denoiser(Protocol):
    """Anything that maps (x_t, t, audio, known_mask, known, valid, drop_cond) to an x0 prediction."""

    def __call__(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor | None,
        audio: torch.Tensor,
        known_mask: torch.Tensor | None = None,
        known: torch.Tensor | None = None,
        valid: torch.Tensor | None = None,
        drop_cond: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def cosine_betas(cfg: DiffusionConfig) -> torch.Tensor:
    """Betas with alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2), clipped at max_beta; (T,) float64."""
    T, s = cfg.num_steps, cfg.cosine_s
    f = [math.cos((i / T + s) / (1 + s) * math.pi / 2) ** 2 for i in range(T + 1)]
    return torch.tensor([min(1 - f[i + 1] / f[i], cfg.max_beta) for i in range(T)], dtype=torch.float64)


def linear_betas(cfg: DiffusionConfig) -> torch.Tensor:
    """Ho et al.'s linear betas from 1e-4 to 0.02, rescaled to T steps; (T,) float64."""
    scale = 1000 / cfg.num_steps
    return torch.linspace(scale * 1e-4, scale * 0.02, cfg.num_steps, dtype=torch.float64)


BETA_SCHEDULES: dict[str, Callable[[DiffusionConfig], torch.Tensor]] = {
    "cosine": cosine_betas,
    "linear": linear_betas,
}


class NoiseSchedule:
    """Betas, cumulative alphas and posterior q(x_{t-1} | x_t, x0) coefficients, as (T,) float64 tensors."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        self.num_steps = cfg.num_steps
        self.betas = BETA_SCHEDULES[cfg.schedule](cfg)
        alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        ac, ac_prev = self.alphas_cumprod, self.alphas_cumprod_prev
        # Square roots are taken in float64 here: 1 - alpha_bar computed in float32 near t=0 would lose
        # about three digits to cancellation.
        self.sqrt_alphas_cumprod = ac.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - ac).sqrt()
        self.posterior_variance = self.betas * (1.0 - ac_prev) / (1.0 - ac)
        self.posterior_mean_coef1 = self.betas * ac_prev.sqrt() / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - ac_prev) * alphas.sqrt() / (1.0 - ac)
        # The posterior variance is 0 at t=0; like improved DDPM, its log is clipped to the value at t=1.
        small = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        large = torch.cat([self.posterior_variance[1:2], self.betas[1:]])
        self.sampling_log_variance = (small if cfg.posterior_variance == "small" else large).log()


def gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Pick per-sample schedule values at timesteps t (B,), shaped (B, 1, 1) like ``like``."""
    picked = values[t.cpu()].to(device=like.device, dtype=like.dtype)  # (B,)
    return picked.view(-1, *([1] * (like.ndim - 1)))  # (B, 1, 1)


def q_sample(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Diffuse clean data: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise.

    Args:
        x0: (B, T, N) clean sequences; t: (B,) timesteps; noise: (B, T, N) standard normal.
    Returns:
        (B, T, N) noisy sequences x_t.
    """
    signal = gather(schedule.sqrt_alphas_cumprod, t, x0)  # (B, 1, 1)
    sigma = gather(schedule.sqrt_one_minus_alphas_cumprod, t, x0)  # (B, 1, 1)
    return signal * x0 + sigma * noise


def randn(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Standard normal numbers drawn on the generator's device, then moved next to ``like``."""
    device = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=device).to(device=like.device, dtype=like.dtype)


def rand(shape: tuple[int, ...], generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """Uniform [0, 1) numbers drawn on the generator's device, then moved next to ``like``."""
    device = generator.device if generator is not None else like.device
    return torch.rand(shape, generator=generator, device=device).to(like.device)


def sample_known_mask(
    cfg: DiffusionConfig, valid: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw the training-time known-frame mask (mask editing, supplement §I.4).

    Each real frame is known with probability ``mask_frac``; a sample gets known frames at all with
    probability ``mask_apply_prob``.
    Args:
        valid: (B, T) bool, True on real frames.
    Returns:
        (B, T) bool mask of known frames.
    """
    B, T = valid.shape
    per_frame = rand((B, T), generator, valid) < cfg.mask_frac  # (B, T)
    per_sample = rand((B,), generator, valid) < cfg.mask_apply_prob  # (B,)
    return per_frame & per_sample[:, None] & valid  # (B, T)


def training_loss(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cfg: DiffusionConfig,
    x0: torch.Tensor,
    audio: torch.Tensor,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The prior's training loss L_a2nl + L_vel on one batch.

    1. Draw t ~ U{0..T-1} and diffuse x0 to x_t (q_sample).
    2. Draw the known frames (mask editing) and the per-sample condition dropout.
    3. Predict x0 and take the MSE over unknown real frames (L_a2nl, x0 parameterisation).
       The known frames reach the network through its mask and known-value channels; x_t itself stays
       q_sample(x0) everywhere, which matches sampling, where x_t at known frames is driven by the pasted x0.
    4. Paste the known frames into the prediction and take the velocity MSE over real frame pairs, so
       the joints between given and predicted frames are trained to be smooth (L_vel, MDM form).
    Args:
        x0: (B, T, N) clean non-lip features f^v_nl; audio: (B, T, A) audio features f_a.
        valid: (B, T) bool, True on real frames (None: all real).
    Returns:
        dict with "loss" (weighted total), "x0" and "vel" (unweighted terms), all scalars.
    """
    B, T, N = x0.shape
    if valid is None:
        valid = torch.ones(B, T, dtype=torch.bool, device=x0.device)
    t = (rand((B,), generator, x0) * schedule.num_steps).long().clamp_max(schedule.num_steps - 1)  # (B,)
    x_t = q_sample(schedule, x0, t, randn((B, T, N), generator, x0))  # (B, T, N)
    known_mask = sample_known_mask(cfg, valid, generator)  # (B, T)
    drop_cond = rand((B,), generator, x0) < cfg.cond_dropout  # (B,)
    pred = denoiser(x_t, t, audio, known_mask, x0, valid, drop_cond)  # (B, T, N)
    loss_x0 = masked_mse(pred, x0, valid & ~known_mask)
    loss_vel = velocity_loss(paste_known(pred, known_mask, x0), x0, valid)
    total = cfg.lambda_x0 * loss_x0 + cfg.lambda_vel * loss_vel
    return {"loss": total, "x0": loss_x0.detach(), "vel": loss_vel.detach()}


def paste_known(x0: torch.Tensor, known_mask: torch.Tensor | None, known: torch.Tensor | None) -> torch.Tensor:
    """Overwrite x0 (B, T, N) with the known frames where known_mask (B, T) is True."""
    if known_mask is None or known is None:
        return x0
    return torch.where(known_mask[..., None], known, x0)  # (B, T, N)
