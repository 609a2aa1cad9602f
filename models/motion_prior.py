"""The trained motion priors as generation uses them: rebuild one from its snapshot config and sample non-lip
feature sequences for audio features of any length (TH-PAD supplement §I.4 and Fig. I; docs/paper-notes.md §1.6).

A prior snapshot's config holds the denoiser's config, the per-channel normalisation of f_nl and f_a it was
trained with, its window, and its process: ``diffusion`` (stage 4) or ``autoregressive`` (stage 5). Pure torch
and numpy: nothing here reads files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.autoregressive import ar_sample_long
from thpad.models.diffusion.process import DiffusionConfig, NoiseSchedule
from thpad.models.diffusion.sampling import SamplerConfig, sample_long
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser, MotionDenoiserConfig


@dataclass(frozen=True, eq=False)
class NormStats:
    """Per-channel mean and std of f_nl (N,) and f_a (A,) over the train frames."""

    nl_mean: np.ndarray
    nl_std: np.ndarray
    audio_mean: np.ndarray
    audio_std: np.ndarray

    def to_json(self) -> dict[str, list[float]]:
        """Plain lists, for the snapshot config."""
        return {name: getattr(self, name).astype(np.float64).tolist() for name in
                ("nl_mean", "nl_std", "audio_mean", "audio_std")}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NormStats:
        """The inverse of ``to_json``."""
        return cls(*(np.asarray(data[name], np.float32) for name in ("nl_mean", "nl_std", "audio_mean", "audio_std")))

    def normalise_nl(self, f_nl: np.ndarray) -> np.ndarray:
        return ((f_nl - self.nl_mean) / self.nl_std).astype(np.float32)  # (T, N)

    def normalise_audio(self, f_a: np.ndarray) -> np.ndarray:
        return ((f_a - self.audio_mean) / self.audio_std).astype(np.float32)  # (T, A)

    def unnormalise_nl(self, x: np.ndarray) -> np.ndarray:
        return (x * self.nl_std + self.nl_mean).astype(np.float32)  # (T, N)


def denoiser_config(model: str, nl_dim: int, audio_dim: int, causal: bool) -> MotionDenoiserConfig:
    """The preset ``model`` with the data's widths; causal (and without timestep) for the AR prior."""
    return dataclasses.replace(DENOISER_PRESETS[model], nl_dim=nl_dim, audio_dim=audio_dim, causal=causal,
                               use_timestep=not causal)


def prior_snapshot_config(denoiser: MotionDenoiserConfig, norm: NormStats, window: int,
                          **process: Any) -> dict[str, Any]:
    """The snapshot's JSON config: the denoiser, the normalisation of f_nl and f_a, the window, and the
    process config (``diffusion=`` for stage 4, ``autoregressive=`` for stage 5) as plain dicts."""
    return {"denoiser": to_dict(denoiser), "normalisation": norm.to_json(), "window": window,
            **{name: to_dict(value) for name, value in process.items()}}


def build_prior(config: Mapping[str, Any]) -> MotionDenoiser:
    """A freshly initialised denoiser from a prior snapshot's config (stage 4 or 5)."""
    return MotionDenoiser(from_dict(MotionDenoiserConfig, config["denoiser"]))


def prior_schedule(config: Mapping[str, Any]) -> NoiseSchedule:
    """The noise schedule of a diffusion prior snapshot's config."""
    return NoiseSchedule(from_dict(DiffusionConfig, config["diffusion"]))


def prior_normalisation(config: Mapping[str, Any]) -> NormStats:
    """The f_nl / f_a normalisation of a prior snapshot's config: sample in normalised units, then
    ``unnormalise_nl``."""
    return NormStats.from_json(config["normalisation"])


@torch.no_grad()
def generate_nl(net: MotionDenoiser, config: Mapping[str, Any], f_a: np.ndarray, sampler: SamplerConfig | None = None,
                generator: torch.Generator | None = None) -> np.ndarray:
    """Non-lip features for audio features of any length, with a prior rebuilt from its snapshot.

    The audio is normalised, sampled in chained windows of the snapshot's ``window`` (supplement Fig. I) by
    the diffusion prior with ``sampler`` (its ``window`` is replaced) or by the AR prior (no sampler), and
    the result un-normalised.
    Args:
        net: ``build_prior(config)`` with the snapshot's weights, in eval mode; config: the snapshot's config.
        f_a: (B, L, A) raw audio features.
    Returns:
        (B, L, N) raw non-lip features.
    """
    norm = prior_normalisation(config)
    audio = torch.from_numpy(norm.normalise_audio(f_a)).to(next(net.parameters()).device)  # (B, L, A)
    if "diffusion" in config:
        if sampler is None:
            raise ValueError("sampling the diffusion prior needs sampler settings (guidance, sampler, steps)")
        window = dataclasses.replace(sampler, window=int(config["window"]))
        x = sample_long(net, prior_schedule(config), window, audio, net.cfg.nl_dim, generator=generator)  # (B, L, N)
    else:
        x = ar_sample_long(net, audio, int(config["window"]))  # (B, L, N)
    return norm.unnormalise_nl(x.float().cpu().numpy())
