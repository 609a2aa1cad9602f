"""Samplers of the audio-to-non-lip diffusion prior: classifier-free guidance, DDPM, DDIM and mask editing.

TH-PAD Eq. 10 and supplement §II.2 (docs/paper-notes.md §1.6): guided x0 = uncond + s * (cond - uncond) with s = 2.5;
MDM-style editing overwrites the x0 prediction with the known frames at every step (supplement §I.4).
``guidance_rescale`` (ours, off in the paper preset) rescales the guided prediction to the conditional one's
standard deviation (Lin et al. 2024, "Common Diffusion Noise Schedules and Sample Steps are Flawed", §3.4).
MDM samples all T DDPM steps; DDIM (Song et al. 2021) with fewer steps is offered as a faster deviation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from thpad.models.diffusion.chaining import iter_chained_chunks, stitch_chunks
from thpad.models.diffusion.process import Denoiser, NoiseSchedule, gather, paste_known, randn


@dataclass(frozen=True)
class SamplerConfig:
    """Sampling-time settings (they belong to evaluation and generation, never to training)."""

    guidance: float = 2.5  # CFG scale s: 0 = unconditional, 1 = conditional (supplement Table I)
    sampler: Literal["ddpm", "ddim"] = "ddpm"
    num_steps: int | None = None  # DDIM steps; None = all T (DDPM always runs all T)
    eta: float = 0.0  # DDIM stochasticity (0 = deterministic DDIM, 1 ~ DDPM)
    window: int = 128  # chunk length for chained long sequences (the prior's max_frames)
    guidance_rescale: float = 0.0  # phi: 0 = plain CFG (paper Eq. 10), 1 = guided x0 at the conditional's std


def guided_x0(
    denoiser: Denoiser,
    x_t: torch.Tensor,
    t: torch.Tensor,
    audio: torch.Tensor,
    guidance: float,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    rescale: float = 0.0,
) -> torch.Tensor:
    """Classifier-free guided x0 prediction, x0 = uncond + s * (cond - uncond) (paper Eq. 10), optionally
    rescaled towards the conditional prediction's spread (``rescale_guided``).

    With s = 0 or s = 1 only one pass runs, so the result is exactly the unconditional or the conditional
    prediction; otherwise both passes run as one batch of 2B.
    Args:
        x_t: (B, T, N); t: (B,); audio: (B, T, A); known_mask: (B, T); known: (B, T, N); valid: (B, T);
        rescale: phi in [0, 1] of ``rescale_guided``.
    Returns:
        (B, T, N) guided x0 prediction.
    """
    B = x_t.shape[0]
    if guidance in (0.0, 1.0):
        drop = torch.full((B,), guidance == 0.0, dtype=torch.bool, device=x_t.device)
        return denoiser(x_t, t, audio, known_mask, known, valid, drop)

    def twice(z: torch.Tensor | None) -> torch.Tensor | None:
        return None if z is None else torch.cat([z, z], dim=0)  # (2B, ...)

    drop = torch.arange(2 * B, device=x_t.device) >= B  # (2B,) first half conditional
    both = denoiser(twice(x_t), twice(t), twice(audio), twice(known_mask), twice(known), twice(valid), drop)
    cond, uncond = both.chunk(2, dim=0)  # 2 x (B, T, N)
    return rescale_guided(uncond + guidance * (cond - uncond), cond, rescale, valid)


def rescale_guided(guided: torch.Tensor, cond: torch.Tensor, rescale: float,
                   valid: torch.Tensor | None = None) -> torch.Tensor:
    """Guidance rescale: ``phi * guided * std(cond) / std(guided) + (1 - phi) * guided``, each standard deviation
    taken per sample over its valid frames and all channels.

    With s > 1 the extrapolation uncond + s (cond - uncond) also scales up whatever the two predictions disagree
    on, so guided samples come out wider than the data; the rescale keeps guidance's direction at the
    conditional prediction's size.
    Args:
        guided, cond: (B, T, N); rescale: phi in [0, 1] (0 returns ``guided`` unchanged); valid: (B, T) or None.
    Returns:
        (B, T, N).
    """
    if not 0.0 <= rescale <= 1.0:
        raise ValueError(f"guidance_rescale must be in [0, 1], got {rescale}")
    if rescale == 0.0:
        return guided
    weight = torch.ones_like(guided[..., :1]) if valid is None else valid[..., None].to(guided.dtype)  # (B, T, 1)
    ratio = masked_std(cond, weight) / masked_std(guided, weight).clamp_min(1e-6)  # (B, 1, 1)
    return rescale * guided * ratio + (1.0 - rescale) * guided


def masked_std(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Standard deviation (B, 1, 1) of each sample of x (B, T, N) over the frames where weight (B, T, 1) is 1."""
    count = (weight.sum(dim=(1, 2), keepdim=True) * x.shape[-1]).clamp_min(1.0)  # (B, 1, 1)
    mean = (x * weight).sum(dim=(1, 2), keepdim=True) / count  # (B, 1, 1)
    return ((((x - mean) ** 2) * weight).sum(dim=(1, 2), keepdim=True) / count).sqrt()  # (B, 1, 1)


@torch.no_grad()
def ddpm_sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    audio: torch.Tensor,
    nl_dim: int,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Ancestral DDPM sampling over all T steps (Ho et al. 2020, x0 parameterisation).

    1. Start from x_{T-1} ~ N(0, I).
    2. At each t: guided x0 prediction (Eq. 10), known frames pasted in (mask editing).
    3. x_{t-1} ~ q(x_{t-1} | x_t, x0): posterior mean coef1 * x0 + coef2 * x_t, sigma_small variance.
    4. At t = 0 the (edited) x0 prediction is the sample, so known frames are kept exactly.
    Args/Returns: as ``sample``.
    """
    if cfg.num_steps not in (None, schedule.num_steps):
        raise ValueError(f"DDPM runs all {schedule.num_steps} steps; use sampler='ddim' for {cfg.num_steps}")
    B, T, _ = audio.shape
    x = randn((B, T, nl_dim), generator, audio)  # (B, T, N)
    for step in reversed(range(schedule.num_steps)):
        t = torch.full((B,), step, dtype=torch.long, device=audio.device)
        x0 = guided_x0(denoiser, x, t, audio, cfg.guidance, known_mask, known, valid, cfg.guidance_rescale)
        x0 = paste_known(x0, known_mask, known)  # (B, T, N)
        if step > 0:
            coef1, coef2 = (
                gather(schedule.posterior_mean_coef1, t, x),
                gather(schedule.posterior_mean_coef2, t, x),
            )
            mean = coef1 * x0 + coef2 * x  # (B, T, N)
            std = (0.5 * gather(schedule.sampling_log_variance, t, x)).exp()
            x = mean + std * randn((B, T, nl_dim), generator, audio)  # (B, T, N)
    return x0


def ddim_timesteps(num_train_steps: int, num_steps: int) -> list[int]:
    """Descending, evenly spaced, unique timesteps from T-1 down to 0 (all T when num_steps == T)."""
    if not 1 <= num_steps <= num_train_steps:
        raise ValueError(f"num_steps must be in [1, {num_train_steps}], got {num_steps}")
    ts = torch.linspace(num_train_steps - 1, 0, num_steps, dtype=torch.float64).round().long().tolist()
    return sorted(set(ts), reverse=True)


@torch.no_grad()
def ddim_sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    audio: torch.Tensor,
    nl_dim: int,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DDIM sampling (Song et al. 2021, Eq. 12) over ``cfg.num_steps`` steps with stochasticity ``cfg.eta``.

    1. Start from x ~ N(0, I) at the first timestep.
    2. At each t: guided, edited x0 prediction; implied noise eps = (x_t - sqrt(a_t) x0) / sqrt(1 - a_t).
    3. x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z,
       sigma = eta * sqrt((1 - a_prev) / (1 - a_t)) * sqrt(1 - a_t / a_prev).
    4. The last step returns the edited x0 prediction.
    Args/Returns: as ``sample``.
    """
    steps = ddim_timesteps(schedule.num_steps, cfg.num_steps or schedule.num_steps)
    B, T, _ = audio.shape
    x = randn((B, T, nl_dim), generator, audio)  # (B, T, N)
    for i, step in enumerate(steps):
        t = torch.full((B,), step, dtype=torch.long, device=audio.device)
        x0 = guided_x0(denoiser, x, t, audio, cfg.guidance, known_mask, known, valid, cfg.guidance_rescale)
        x0 = paste_known(x0, known_mask, known)  # (B, T, N)
        if i + 1 == len(steps):
            break
        a, a_prev = float(schedule.alphas_cumprod[step]), float(schedule.alphas_cumprod[steps[i + 1]])
        eps = (x - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
        sigma = cfg.eta * math.sqrt((1.0 - a_prev) / (1.0 - a) * (1.0 - a / a_prev))
        x = math.sqrt(a_prev) * x0 + math.sqrt(max(1.0 - a_prev - sigma**2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * randn((B, T, nl_dim), generator, audio)  # (B, T, N)
    return x0


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {"ddpm": ddpm_sample, "ddim": ddim_sample}


@torch.no_grad()
def sample(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    audio: torch.Tensor,
    nl_dim: int,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample one window of non-lip features with the sampler named in ``cfg`` (put the net in eval mode).

    Args:
        audio: (B, T, A) audio features, T <= the network's max_frames.
        nl_dim: width N of the non-lip feature.
        known_mask: (B, T) bool frames to keep; known: (B, T, N) their values (mask editing).
        valid: (B, T) bool, True on real frames; generator: seeded RNG for reproducible samples.
    Returns:
        (B, T, N) sample; equal to ``known`` exactly where ``known_mask`` is True.
    """
    return SAMPLERS[cfg.sampler](denoiser, schedule, cfg, audio, nl_dim, known_mask, known, valid, generator)


@torch.no_grad()
def sample_long(
    denoiser: Denoiser,
    schedule: NoiseSchedule,
    cfg: SamplerConfig,
    audio: torch.Tensor,
    nl_dim: int,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Sample a sequence of any length in chained windows of ``cfg.window`` frames (supplement Fig. I).

    Args:
        audio: (B, L, A) audio features, any L; known_mask: (B, L); known: (B, L, N).
    Returns:
        (B, L, N) sample; each window's first frame is the previous window's last output frame.
    """

    def one_window(a: torch.Tensor, m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return sample(denoiser, schedule, cfg, a, nl_dim, m, k, None, generator)

    chunks = list(iter_chained_chunks(one_window, audio, nl_dim, cfg.window, known_mask, known))
    return stitch_chunks(chunks)
