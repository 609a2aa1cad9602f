"""One tiny bundle per test session: tiny-preset networks with seeded random weights (contract tests need shapes,
determinism and exactness, not a trained model), written as snapshots and gathered by the real ``bundle`` stage code.
Also real inputs: a portrait from an installed package and espeak-ng speech."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from thpad.models.diffusion.process import DiffusionConfig
from thpad.models.motion_prior import NormStats, build_prior, denoiser_config, prior_snapshot_config
from thpad.models.talking_head import TALKING_HEAD_PRESETS, build_talking_head, talking_head_snapshot_config
from thpad.pipelines.generate.bundle import BundleSources, build_bundle
from thpad.storage.checkpoint import save_snapshot

WINDOW = 32  # a short prior window, so that a few seconds of speech chain several windows


def _prior_snapshot(path: Path, nl_dim: int, audio_dim: int, causal: bool, seed: int) -> Path:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    norm = NormStats(rng.normal(size=nl_dim).astype(np.float32), (1 + rng.random(nl_dim)).astype(np.float32),
                     rng.normal(size=audio_dim).astype(np.float32), (1 + rng.random(audio_dim)).astype(np.float32))
    process = {"autoregressive": {"lambda_mse": 1.0, "lambda_vel": 0.0}} if causal else {
        "diffusion": DiffusionConfig(num_steps=50)}
    denoiser = denoiser_config("tiny", nl_dim, audio_dim, causal)
    if causal:
        config = prior_snapshot_config(denoiser, norm, WINDOW)
        config["autoregressive"] = process["autoregressive"]
    else:
        config = prior_snapshot_config(denoiser, norm, WINDOW, **process)
    return save_snapshot(path, config, build_prior(config))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, micro_params) -> Path:
    """data/bundle of tiny random networks (diffusion prior with T=50), made by the bundle stage's code."""
    root = tmp_path_factory.mktemp("bundle")
    torch.manual_seed(0)
    head_config = talking_head_snapshot_config(TALKING_HEAD_PRESETS["tiny"])
    head = save_snapshot(root / "disentangle.pt", head_config, build_talking_head(head_config))
    cfg = TALKING_HEAD_PRESETS["tiny"]
    prior = _prior_snapshot(root / "prior.pt", cfg.nl_dim, cfg.audio.out_dim, causal=False, seed=1)
    prior_ar = _prior_snapshot(root / "prior_ar.pt", cfg.nl_dim, cfg.audio.out_dim, causal=True, seed=2)
    out = root / "bundle"
    build_bundle(BundleSources(str(head), str(prior), str(prior_ar)), out, micro_params.preprocess,
                 micro_params.train_prior.validation)
    return out


@pytest.fixture(scope="session")
def portrait_path(tmp_path_factory) -> Path:
    """Grace Hopper's portrait, shipped with matplotlib."""
    from matplotlib import cbook

    path = tmp_path_factory.mktemp("photo") / "hopper.jpg"
    shutil.copyfile(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), path)
    return path


@pytest.fixture(scope="session")
def speech_path(tmp_path_factory) -> Path:
    """About 3 s of espeak-ng speech (22.05 kHz wav)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "A talking head follows the words of this sentence."], check=True)
    return path
