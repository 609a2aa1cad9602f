"""The trained motion priors as generation uses them: rebuild one from its snapshot config and sample non-lip
feature sequences for audio features of any length (TH-PAD supplement §I.4 and Fig. I; docs/paper-notes.md §1.6).

A prior snapshot's config holds the denoiser's config, the per-channel normalisation of f_nl and f_a it was
trained with, its window, and its process: ``diffusion`` (stage 4) or ``autoregressive`` (stage 5). Pure torch
and numpy: nothing here reads files.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.autoregressive import ar_sample
from thpad.models.diffusion.chaining import iter_chained_chunks
from thpad.models.diffusion.process import DiffusionConfig, NoiseSchedule
from thpad.models.diffusion.sampling import SamplerConfig, sample
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


def is_diffusion(config: Mapping[str, Any]) -> bool:
    """Whether a prior snapshot's config is the diffusion prior's (stage 4), not the AR prior's (stage 5)."""
    return "diffusion" in config


@torch.no_grad()
def iter_nl(net: MotionDenoiser, config: Mapping[str, Any], f_a: np.ndarray, sampler: SamplerConfig | None = None,
            generator: torch.Generator | None = None, known_mask: np.ndarray | None = None,
            known: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """Non-lip features for audio features of any length, window by window, with a prior rebuilt from its snapshot.

    1. Normalise the audio features (and the known frames) with the snapshot's statistics.
    2. Sample chained windows of the snapshot's ``window`` (supplement Fig. I): the diffusion prior with ``sampler``
       (its ``window`` is replaced), the AR prior deterministically (no sampler).
    3. Un-normalise each window, put the known frames back exactly as given, and yield its new frames (a window
       after the first starts at the previous one's last frame, which is not yielded twice).
    Args:
        net: ``build_prior(config)`` with the snapshot's weights, in eval mode; config: the snapshot's config.
        f_a: (B, L, A) raw audio features.
        known_mask: (B, L) bool frames to pin (mask editing, supplement §II.3); known: (B, L, N) their raw f_nl.
    Yields:
        (B, t, N) raw non-lip features; the chunks concatenate to (B, L, N).
    """
    norm = prior_normalisation(config)
    device = next(net.parameters()).device
    audio = torch.from_numpy(norm.normalise_audio(f_a)).to(device)  # (B, L, A)
    mask_t = None if known_mask is None else torch.from_numpy(np.asarray(known_mask, bool)).to(device)  # (B, L)
    known_t = None if known is None else torch.from_numpy(norm.normalise_nl(known)).to(device)  # (B, L, N)
    chunks = iter_chained_chunks(_window_sampler(net, config, sampler, generator), audio, net.cfg.nl_dim,
                                 int(config["window"]), mask_t, known_t)
    start = 0
    for index, chunk in enumerate(chunks):
        x = norm.unnormalise_nl(chunk.float().cpu().numpy())[:, 0 if index == 0 else 1:]  # (B, t, N)
        if known_mask is not None and known is not None:
            span = slice(start, start + x.shape[1])
            x = np.where(np.asarray(known_mask, bool)[:, span, None], known[:, span], x).astype(np.float32)
        start += x.shape[1]
        yield x


def _window_sampler(net: MotionDenoiser, config: Mapping[str, Any], sampler: SamplerConfig | None,
                    generator: torch.Generator | None):
    """The one-window sampler ``iter_chained_chunks`` calls: (audio, known_mask, known) -> (B, t, N)."""
    if not is_diffusion(config):
        return lambda a, m, k: ar_sample(net, a, m, k)
    if sampler is None:
        raise ValueError("sampling the diffusion prior needs sampler settings (guidance, sampler, steps)")
    schedule = prior_schedule(config)
    return lambda a, m, k: sample(net, schedule, sampler, a, net.cfg.nl_dim, m, k, None, generator)


@torch.no_grad()
def generate_nl(net: MotionDenoiser, config: Mapping[str, Any], f_a: np.ndarray, sampler: SamplerConfig | None = None,
                generator: torch.Generator | None = None) -> np.ndarray:
    """Every window of ``iter_nl`` at once: (B, L, A) raw audio features -> (B, L, N) raw non-lip features."""
    return np.concatenate(list(iter_nl(net, config, f_a, sampler, generator)), axis=1)  # (B, L, N)
