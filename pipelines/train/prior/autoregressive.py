"""Stage 5, ``train_prior_ar``: the auto-regressive baseline prior (TH-PAD supplement §I.3), the same
transformer as stage 4 with causal attention and no timestep, trained by teacher-forced next-frame MSE
(``models.autoregressive.ar_training_loss``) on the same windows, normalisation and schedule.

Validation (rank 0, EMA network, at every checkpoint and at the end): the first window of each val clip is
generated frame by frame (``ar_sample``; deterministic, so one sample per clip) and compared with the true
f_nl by the measures of stage 4 (``val/fd``, ``val/fd_vel``, ``val/speed_corr``, ``val/gesture``), so the
two priors can be compared. The snapshot holds the EMA network and {denoiser, autoregressive,
normalisation, window}; ``motion_loop.build_prior`` rebuilds it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from thpad.codec import from_dict, to_dict
from thpad.models.autoregressive import ar_sample, ar_training_loss
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiserConfig
from thpad.models.motion_prior import NormStats
from thpad.pipelines.metrics.motion import motion_metrics, speed_correlation
from thpad.pipelines.train.harness import run_training
from thpad.pipelines.train.prior.config import PriorARConfig
from thpad.pipelines.train.prior.data import ValWindows, check_features
from thpad.pipelines.train.prior.figure import trajectory_figure
from thpad.pipelines.train.prior.loop import MotionObjective, train_motion_prior
from thpad.storage.fingerprint import features_fingerprint
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)
STAGE = "train_prior_ar"


@torch.no_grad()
def validate_ar(ema: nn.Module, val: ValWindows | None, norm: NormStats) -> tuple[dict[str, float], list[np.ndarray]]:
    """``val/{fd,fd_vel,speed_corr,gesture}`` of the AR samples, ``val/gesture_truth``, and the samples
    V x (T_i, N); nothing on ranks without validation data. Padding sits after the real frames, so the
    causal network's real frames never see it."""
    if val is None:
        return {}, []
    device = next(ema.parameters()).device
    x = ar_sample(ema, val.audio.to(device))  # (V, W, N)
    samples = [norm.unnormalise_nl(x[i, :len(t)].float().cpu().numpy()) for i, t in enumerate(val.truth)]
    metrics = {f"val/{name}": value for name, value in motion_metrics(samples, val.truth, val.speaking).items()}
    if val.speaking is not None:
        metrics["val/gesture_truth"] = speed_correlation(val.truth, val.speaking)
    return metrics, samples


def objective(cfg: PriorARConfig) -> MotionObjective:
    """Stage 5 in the shared loop: causal attention without timestep, teacher-forced next-frame MSE,
    validation by frame-by-frame generation."""
    v = cfg.validation

    def loss(model: nn.Module, denoiser: MotionDenoiserConfig, x0: torch.Tensor, audio: torch.Tensor,
             valid: torch.Tensor) -> Mapping[str, torch.Tensor]:
        return ar_training_loss(model, cfg.autoregressive, x0, audio, valid)

    def figure(val: ValWindows, samples: Any, step: int) -> Figure:
        shown = v.figure_clips
        return trajectory_figure(val.truth[:shown], {"AR prior": samples[:shown]}, val.keys[:shown],
                                 v.figure_components, f"AR prior (EMA, step {step}): val f_nl principal components")

    return MotionObjective("AR prior", causal=True, process={"autoregressive": cfg.autoregressive}, loss=loss,
                           validate=validate_ar, figure=figure)


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 5. ``config``: see ``harness.run_training``."""
    cfg = from_dict(PriorARConfig, config["cfg"])
    train_motion_prior(cfg, config, objective(cfg))


def train_prior_ar(cfg: PriorARConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 5 on Ray Train and write its snapshot to ``cfg.out``; returns Ray's ``Result``."""
    storage = Storage(cfg.s3)
    check_features(cfg.features, storage)
    return run_training(train_loop_per_worker, cfg, STAGE, {"features": features_fingerprint(cfg.features, storage)},
                        {"denoiser": to_dict(DENOISER_PRESETS[cfg.model])}, fail_at_step)
