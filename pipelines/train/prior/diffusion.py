"""Stage 4, ``train_prior``: the audio-to-non-lip diffusion prior P_a2nl (TH-PAD supplement §I.3/§I.4,
docs/paper-notes.md §1.6), a bidirectional transformer predicting the clean f_nl window from noisy f_nl and the
audio features f_a, trained with L_a2nl + L_vel, mask editing and condition dropout
(``models.diffusion.process.training_loss``).

Validation (rank 0, EMA network, at every checkpoint and at the end): the first window of each val clip is
sampled with the validation sampler at the guidance scale s and at s = 0 (unconditional), with the same
noise seeds, and compared with the true f_nl (``prior_eval``: Fréchet distances of frames and velocities,
speed correlations). The snapshot holds the EMA denoiser and {denoiser, diffusion, normalisation, window};
``models.motion_prior`` rebuilds what sampling needs from it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from thpad.codec import from_dict, to_dict
from thpad.models.diffusion.process import NoiseSchedule, training_loss
from thpad.models.diffusion.sampling import SamplerConfig, sample
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiserConfig
from thpad.models.motion_prior import NormStats
from thpad.pipelines.metrics.motion import motion_metrics, speed_correlation
from thpad.pipelines.train.harness import run_training
from thpad.pipelines.train.prior.config import PriorConfig, PriorValidationParams
from thpad.pipelines.train.prior.data import ValWindows, check_features
from thpad.pipelines.train.prior.figure import trajectory_figure
from thpad.pipelines.train.prior.loop import MotionObjective, train_motion_prior
from thpad.storage.fingerprint import features_fingerprint
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)
STAGE = "train_prior"
FIGURE_SEEDS = 2  # guided samples per clip drawn in the figure (the unconditional one: 1)
SCALED = re.compile(r"^val/(?P<name>\w+?)_s(?P<scale>\d[\d.e+-]*)$")  # val/fd_s2.5, val/fd_vel_s0, ...


# Validation.

@torch.no_grad()
def sample_val(net: nn.Module, schedule: NoiseSchedule, v: PriorValidationParams, val: ValWindows,
               norm: NormStats, guidance: float, seed: int) -> list[np.ndarray]:
    """Sample the val windows (no known frames) and return the un-normalised real frames, V x (T_i, N)."""
    device = next(net.parameters()).device
    steps = v.num_steps if v.sampler == "ddim" else None  # DDPM always runs all T steps
    sampler = SamplerConfig(guidance=guidance, sampler=v.sampler, num_steps=steps, eta=v.eta,
                            window=val.audio.shape[1], guidance_rescale=v.guidance_rescale)
    generator = torch.Generator().manual_seed(seed)
    x = sample(net, schedule, sampler, val.audio.to(device), len(norm.nl_mean), valid=val.valid.to(device),
               generator=generator)  # (V, W, N)
    return [norm.unnormalise_nl(x[i, :len(t)].float().cpu().numpy()) for i, t in enumerate(val.truth)]


def validate_prior(ema: nn.Module, schedule: NoiseSchedule, v: PriorValidationParams, val: ValWindows | None,
                   norm: NormStats) -> tuple[dict[str, float], dict[float, list[list[np.ndarray]]]]:
    """``val/{fd,fd_vel,speed_corr,gesture}_s{s}`` at s = guidance and s = 0, ``val/gesture_truth``, and the
    samples per s (num_seeds x V sequences); nothing on ranks without validation data."""
    if val is None:
        return {}, {}
    metrics, samples = {}, {}
    for guidance in dict.fromkeys((v.guidance, 0.0)):
        runs = [sample_val(ema, schedule, v, val, norm, guidance, v.seed + k) for k in range(v.num_seeds)]
        samples[guidance] = runs
        speaking = None if val.speaking is None else val.speaking * v.num_seeds
        found = motion_metrics([s for run in runs for s in run], val.truth * v.num_seeds, speaking)
        metrics.update({f"val/{name}_s{guidance:g}": value for name, value in found.items()})
    if val.speaking is not None:
        metrics["val/gesture_truth"] = speed_correlation(val.truth, val.speaking)
    return metrics, samples


def guidance_free_names(metrics: Mapping[str, float], guidance: float) -> dict[str, float]:
    """``metrics`` under names that do not hold the guidance scale, for the stage's DVC metrics and plots, which
    compare runs name by name: ``val/{name}_s{s}`` becomes ``val/guided/{name}`` for s != 0 and
    ``val/unguided/{name}`` for s = 0, and both when ``guidance`` is 0 (validation then samples once, at s = 0).
    Other names are kept."""
    named: dict[str, float] = {}
    for key, value in metrics.items():
        found = SCALED.match(key)
        if found is None:
            named[key] = value
            continue
        unguided = float(found["scale"]) == 0
        named[f"val/{'unguided' if unguided else 'guided'}/{found['name']}"] = value
        if unguided and guidance == 0:
            named[f"val/guided/{found['name']}"] = value
    return named


def prior_figure(val: ValWindows, samples: Mapping[float, Sequence[Sequence[np.ndarray]]], clips: int,
                 components: int, title: str) -> Figure:
    """The first ``clips`` val clips: guided samples (2 seeds) and one unconditional sample against the truth."""
    curves = {}
    for guidance, runs in samples.items():
        for k, run in enumerate(runs[:FIGURE_SEEDS if guidance else 1]):
            curves[f"s={guidance:g}, seed {k}"] = run[:clips]
    return trajectory_figure(val.truth[:clips], curves, val.keys[:clips], components, title)


def objective(cfg: PriorConfig) -> MotionObjective:
    """Stage 4 in the shared loop: bidirectional attention, L_a2nl + L_vel with mask editing and condition
    dropout, validation by DDIM sampling at s and at s = 0."""
    schedule = NoiseSchedule(cfg.diffusion)
    v = cfg.validation

    def loss(model: nn.Module, _: MotionDenoiserConfig, x0: torch.Tensor, audio: torch.Tensor,
             valid: torch.Tensor) -> Mapping[str, torch.Tensor]:
        return training_loss(model, schedule, cfg.diffusion, x0, audio, valid)

    def validate(ema: nn.Module, val: ValWindows | None, norm: NormStats) -> tuple[dict[str, float], Any]:
        return validate_prior(ema, schedule, v, val, norm)

    def figure(val: ValWindows, samples: Any, step: int) -> Figure:
        return prior_figure(val, samples, v.figure_clips, v.figure_components,
                            f"diffusion prior (EMA, step {step}): val f_nl principal components")

    return MotionObjective("diffusion prior", causal=False, process={"diffusion": cfg.diffusion}, loss=loss,
                           validate=validate, figure=figure)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 4. ``config``: see ``harness.run_training``."""
    cfg = from_dict(PriorConfig, config["cfg"])
    train_motion_prior(cfg, config, objective(cfg))


def train_prior(cfg: PriorConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 4 on Ray Train and write its snapshot to ``cfg.out``; returns Ray's ``Result``."""
    storage = Storage(cfg.s3)
    check_features(cfg.features, storage)
    return run_training(train_loop_per_worker, cfg, STAGE, {"features": features_fingerprint(cfg.features, storage)},
                        {"denoiser": to_dict(DENOISER_PRESETS[cfg.model])}, fail_at_step)
