"""Non-lip trajectories for the evaluated clips, sampled as generation samples them, but a batch of clips at once.

Every clip's frame 0 is pinned to E_v's code of its first frame, the source photo (generation's ``anchor``), and the
prior is sampled in chained windows over the whole clip. Clips of one length share a batch; the noise comes from one
``torch.Generator`` per (setting, seed), so results do not depend on the global RNG.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from thpad.models.diffusion.sampling import SamplerConfig
from thpad.models.generation import MotionPrior
from thpad.models.motion_prior import is_diffusion, iter_nl
from thpad.pipelines.evaluate.clips import EvalClip


def default_sampler(sampling: dict) -> SamplerConfig:
    """The bundle's validated sampling defaults as a sampler."""
    steps = None if sampling["sampler"] == "ddpm" else int(sampling["num_steps"])
    return SamplerConfig(guidance=float(sampling["guidance"]), sampler=sampling["sampler"], num_steps=steps,
                         eta=float(sampling["eta"]), guidance_rescale=float(sampling["guidance_rescale"]))


def with_guidance(sampler: SamplerConfig, guidance: float, rescale: float | None = None) -> SamplerConfig:
    """``sampler`` at guidance s (and rescale, when given)."""
    return replace(sampler, guidance=guidance,
                   guidance_rescale=sampler.guidance_rescale if rescale is None else rescale)


@torch.no_grad()
def sample_clips(prior: MotionPrior, clips: Sequence[EvalClip], sampler: SamplerConfig | None, seed: int,
                 known: dict[int, dict[int, np.ndarray]] | None = None) -> list[np.ndarray]:
    """One f_nl trajectory (T_i, N) per clip, frame 0 pinned to the clip's own first code.

    Args:
        prior: the diffusion or the AR prior; sampler: the diffusion sampler (None for the AR prior).
        seed: the noise seed of this call (ignored by the deterministic AR prior).
        known: clip index -> {frame: (N,) code} pinned besides frame 0 (mask editing).
    """
    if is_diffusion(prior.config) and sampler is None:
        raise ValueError("the diffusion prior needs a sampler")
    generator = torch.Generator().manual_seed(seed)
    out: list[np.ndarray | None] = [None] * len(clips)
    for length in sorted({c.num_frames for c in clips}):
        idx = [i for i, c in enumerate(clips) if c.num_frames == length]
        f_a = np.stack([clips[i].f_a for i in idx])  # (B, T, A)
        mask = np.zeros((len(idx), length), bool)  # (B, T)
        values = np.zeros((len(idx), length, clips[idx[0]].f_nl.shape[1]), np.float32)  # (B, T, N)
        for b, i in enumerate(idx):
            pins = {0: clips[i].f_nl[0], **((known or {}).get(i, {}))}
            for frame, code in pins.items():
                mask[b, frame], values[b, frame] = True, code
        chunks = iter_nl(prior.net, prior.config, f_a, sampler if is_diffusion(prior.config) else None,
                         generator, mask, values)
        x = np.concatenate(list(chunks), axis=1)  # (B, T, N)
        for b, i in enumerate(idx):
            out[i] = x[b]
    return out  # type: ignore[return-value]


def timed_samples(prior: MotionPrior, clips: Sequence[EvalClip], sampler: SamplerConfig | None,
                  seeds: Sequence[int], fps: float) -> tuple[list[list[np.ndarray]], float]:
    """``sample_clips`` for each seed, and the seconds of compute per second of video (at ``fps``)."""
    start = time.perf_counter()
    runs = [sample_clips(prior, clips, sampler, seed) for seed in seeds]
    seconds = time.perf_counter() - start
    video_seconds = len(seeds) * sum(c.num_frames for c in clips) / fps
    return runs, seconds / video_seconds
