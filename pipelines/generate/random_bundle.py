"""A bundle of a preset's networks with seeded random weights: what the contract tests and the generation benchmark
load when no trained bundle is at hand (shapes, determinism, exactness and timing do not depend on the weights)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from thpad.models.autoregressive import AutoregressiveConfig
from thpad.models.diffusion.process import DiffusionConfig
from thpad.models.motion_prior import NormStats, build_prior, denoiser_config, prior_snapshot_config
from thpad.models.talking_head import TALKING_HEAD_PRESETS, build_talking_head, talking_head_snapshot_config
from thpad.pipelines.generate.bundle import BundleSources, build_bundle
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.train.prior.config import PriorValidationParams
from thpad.storage.checkpoint import save_snapshot


def _prior(path: Path, preset: str, nl_dim: int, audio_dim: int, window: int, num_steps: int, causal: bool,
           seed: int) -> Path:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = NormStats(rng.normal(size=nl_dim).astype(np.float32), (1 + rng.random(nl_dim)).astype(np.float32),
                     rng.normal(size=audio_dim).astype(np.float32), (1 + rng.random(audio_dim)).astype(np.float32))
    denoiser = denoiser_config(preset, nl_dim, audio_dim, causal)
    process = ({"autoregressive": AutoregressiveConfig()} if causal
               else {"diffusion": DiffusionConfig(num_steps=num_steps)})
    config = prior_snapshot_config(denoiser, norm, window, **process)
    return save_snapshot(path, config, build_prior(config))


def random_bundle(folder: str | os.PathLike, preset: str, preprocess: PreprocessConfig,
                  validation: PriorValidationParams, window: int = 128, num_steps: int = 1000) -> Path:
    """Write ``folder/bundle`` (and its source snapshots beside it) for ``preset`` ("tiny" or "paper")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    config = talking_head_snapshot_config(TALKING_HEAD_PRESETS[preset])
    head = save_snapshot(folder / "disentangle.pt", config, build_talking_head(config))
    cfg = TALKING_HEAD_PRESETS[preset]
    priors = [_prior(folder / f"{name}.pt", preset, cfg.nl_dim, cfg.audio.out_dim, window, num_steps, causal, seed)
              for name, causal, seed in (("prior", False, 1), ("prior_ar", True, 2))]
    build_bundle(BundleSources(str(head), str(priors[0]), str(priors[1])), folder / "bundle", preprocess, validation)
    return folder / "bundle"
