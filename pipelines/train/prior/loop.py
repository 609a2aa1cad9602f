"""The one training loop of the two motion priors (stage 4, diffusion; stage 5, auto-regressive), in EDM's
order: initialise, load data, construct the network, set up the optimizer, resume, then accumulate → update →
EMA with maintenance (log, validate, checkpoint), and finish with the figure and the snapshot.

What differs between the priors is a ``MotionObjective``: the attention (causal or not), the process config
stored in the snapshot, the loss, the validation and the figure. Both read the same windows of the extracted
features (``motion_data``) with the same normalisation, schedule and checkpoints.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from thpad.models.motion_denoiser import MotionDenoiserConfig
from thpad.models.motion_prior import NormStats, build_prior, denoiser_config, prior_snapshot_config
from thpad.pipelines.train.harness import (
    History,
    Progress,
    capture_rng,
    crossed,
    ema_update,
    failing_rank,
    init_worker,
    is_rank_zero,
    kill_this_worker,
    learning_rate,
    report_checkpoint,
    resume,
    set_learning_rate,
    step_with_averaged_gradients,
)
from thpad.pipelines.train.prior.data import (
    MotionClip,
    ValWindows,
    endless_windows,
    moments,
    normalise_clips,
    rank_clips,
    read_clips,
    stats_from_moments,
    val_windows,
)
from thpad.storage.dvc_outputs import TRAIN, VAL
from thpad.storage.features import list_feature_files
from thpad.storage.tracking import NullRun, StageRun, resume_stage_run
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)

# loss(model, denoiser config, x0 (b, W, N), audio (b, W, A), valid (b, W)) -> {"loss": scalar, ...}
LossFn = Callable[[nn.Module, MotionDenoiserConfig, torch.Tensor, torch.Tensor, torch.Tensor],
                  Mapping[str, torch.Tensor]]
# validate(EMA network, val windows or None, normalisation) -> (metrics, samples for the figure)
ValidateFn = Callable[[nn.Module, "ValWindows | None", NormStats], tuple[dict[str, float], Any]]
# figure(val windows, samples, step) -> Figure
FigureFn = Callable[[ValWindows, Any, int], Figure]


@dataclasses.dataclass(frozen=True)
class MotionObjective:
    """What one prior adds to the shared loop.

    ``process`` is stored in the snapshot's config under its key (``{"diffusion": DiffusionConfig}`` or
    ``{"autoregressive": AutoregressiveConfig}``); ``causal`` also drops the timestep embedding (AR prior).
    """

    label: str
    causal: bool
    process: Mapping[str, Any]
    loss: LossFn
    validate: ValidateFn
    figure: FigureFn


# Data.

def load_training_data(features: str, rank: int, world_size: int, storage: Storage,
                       device: torch.device) -> tuple[list[MotionClip], NormStats]:
    """This rank's train clips, normalised with the statistics of all ranks' clips (an all-reduce)."""
    clips = rank_clips(features, "train", rank, world_size, storage)
    total = moments(clips).to(device)  # (1 + 2N + 2A,)
    if world_size > 1:
        torch.distributed.all_reduce(total)
    norm = stats_from_moments(total, clips[0].f_nl.shape[1])
    return normalise_clips(clips, norm), norm


def load_val(features: str, storage: Storage, norm: NormStats, window: int, max_clips: int) -> ValWindows:
    """The validation windows of the val split (rank 0 only)."""
    return val_windows(read_clips(list_feature_files(features, "val", storage), storage), norm, window, max_clips)


# Checkpoints.

def training_state(net: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, history: History, step: int,
                   cur_nsamples: int) -> dict[str, Any]:
    """What rank 0 stores in each checkpoint."""
    return {"model": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "history": history.state_dict(), "step": step, "cur_nsamples": cur_nsamples}


def save(metrics: Mapping[str, float], progress: Progress, rank: int, net: nn.Module, ema: nn.Module,
         optimizer: torch.optim.Optimizer, history: History,
         snapshot: tuple[dict[str, Any], nn.Module] | None = None) -> None:
    """Report a checkpoint: rank 0's training state (and the snapshot, at the end), every rank's RNG and data
    position."""
    lead = is_rank_zero(rank)
    state = training_state(net, ema, optimizer, history, progress.step, progress.cur_nsamples) if lead else None
    report_checkpoint({**metrics, "step": progress.step, "cur_nsamples": progress.cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": progress.epoch, "position": progress.position}, state,
                      snapshot if lead else None)


# The loop.

def train_motion_prior(cfg: Any, config: Mapping[str, Any], objective: MotionObjective) -> None:
    """One Ray Train worker of a motion prior. ``cfg``: a ``PriorConfig`` or ``PriorARConfig``; ``config``: see
    ``harness.run_training``."""

    # Initialise.
    s, v, w = cfg.schedule, cfg.validation, init_worker(cfg.schedule, cfg.s3)  # same initial weights on every rank
    rank, world_size, lead, device, storage = w.rank, w.world_size, w.lead, w.device, w.storage
    batch_gpu, autocast = w.batch_gpu, w.autocast

    # Load data.
    log.info("Loading features from %s (rank %d of %d)...", cfg.features, rank, world_size)
    clips, norm = load_training_data(cfg.features, rank, world_size, storage, device)
    val = load_val(cfg.features, storage, norm, cfg.data.window, v.max_clips) if lead else None

    # Construct the network.
    denoiser = denoiser_config(cfg.model, len(norm.nl_mean), len(norm.audio_mean), causal=objective.causal)
    snapshot_config = prior_snapshot_config(denoiser, norm, cfg.data.window, **objective.process)
    log.info("Constructing the %s (%s preset, f_nl %d, f_a %d)...", objective.label, cfg.model, denoiser.nl_dim,
             denoiser.audio_dim)
    net = build_prior(snapshot_config).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)

    # Set up the optimizer, resume.
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)
    history = History()  # the curves, for the stage's DVC plots
    progress = resume(rank, s.seed, {"model": net, "ema": ema, "optimizer": optimizer, "history": history},
                      "position")
    batches = endless_windows(clips, cfg.data.window, batch_gpu, s.seed, rank, progress.epoch, progress.position)
    tracker: StageRun = resume_stage_run(cfg.tracking, config["run_id"]) if lead else NullRun()
    if progress.resumed:
        tracker.log_metrics({"progress/resumed_from_nsamples": progress.cur_nsamples}, progress.step)

    # Train.
    log.info("Training for %d samples from %d...", s.total_samples, progress.cur_nsamples)
    tick_nsamples, tick_time = progress.cur_nsamples, time.perf_counter()
    while progress.cur_nsamples < s.total_samples:
        # Accumulate gradients.
        optimizer.zero_grad(set_to_none=True)
        terms: list[dict[str, float]] = []
        for _ in range(s.accum_rounds):
            progress.epoch, progress.position, batch = next(batches)
            x0, audio, valid = (batch[k].to(device) for k in ("x0", "audio", "valid"))  # (b, W, N), (b, W, A), (b, W)
            with autocast:
                losses = objective.loss(net, denoiser, x0, audio, valid)
            (losses["loss"] / s.accum_rounds).backward()
            terms.append({k: float(t.detach()) for k, t in losses.items()})

        # Update weights.
        lr = learning_rate(progress.cur_nsamples, s)
        set_learning_rate(optimizer, lr)
        grad_norm = step_with_averaged_gradients(optimizer, world_size, s.grad_clip)
        ema_update(ema, net, s.ema_decay)
        prev_nsamples = progress.cur_nsamples
        progress.cur_nsamples, progress.step = progress.cur_nsamples + s.batch_size, progress.step + 1
        done = progress.cur_nsamples >= s.total_samples
        if not progress.resumed and config.get("fail_at_step") == progress.step and rank == failing_rank(world_size):
            kill_this_worker(f"injected failure after step {progress.step} on rank {rank} (tests)")

        # Maintenance: log progress.
        if crossed(prev_nsamples, progress.cur_nsamples, s.log_every_samples) or done:
            now = time.perf_counter()
            speed = (progress.cur_nsamples - tick_nsamples) / max(now - tick_time, 1e-9)
            train = {f"train/{k}": float(np.mean([t[k] for t in terms])) for k in terms[0]}
            history.add(TRAIN, progress.step, progress.cur_nsamples, train)
            tracker.log_metrics({**train, "train/lr": lr, "train/grad_norm": float(grad_norm),
                                 "train/samples_per_s": speed, "progress/nsamples": progress.cur_nsamples},
                                progress.step)
            tick_nsamples, tick_time = progress.cur_nsamples, now

        # Maintenance: validate and save the training state (the last one is saved after the loop).
        if crossed(prev_nsamples, progress.cur_nsamples, s.checkpoint_every_samples) and not done:
            metrics, _ = objective.validate(ema, val, norm)
            tracker.log_metrics(metrics, progress.step)
            history.add(VAL, progress.step, progress.cur_nsamples, metrics)
            save(metrics, progress, rank, net, ema, optimizer, history)
            tick_time = time.perf_counter()  # the speed excludes validation

    # Finish: validate, draw the sampled trajectories, save the final state with the snapshot.
    metrics, samples = objective.validate(ema, val, norm)
    tracker.log_metrics(metrics, progress.step)
    history.add(VAL, progress.step, progress.cur_nsamples, metrics)
    if val is not None and v.figure_clips:
        tracker.log_figure(objective.figure(val, samples, progress.step), "trajectories.png")
    save(metrics, progress, rank, net, ema, optimizer, history, (snapshot_config, ema))
    log.info("Done after %d steps (%d samples).", progress.step, progress.cur_nsamples)
