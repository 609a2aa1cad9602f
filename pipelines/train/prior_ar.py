"""Stage 5, ``train_prior_ar``: the auto-regressive baseline prior (TH-PAD supplement §I.3), the same
transformer as stage 4 with causal attention and no timestep, trained by teacher-forced next-frame MSE
(``models.autoregressive.ar_training_loss``) on the same windows, normalisation and schedule.

Validation (rank 0, EMA network, at every checkpoint and at the end): the first window of each val clip is
generated frame by frame (``ar_sample``; deterministic, so one sample per clip) and compared with the true
f_nl by the measures of stage 4 (``val/fd``, ``val/fd_vel``, ``val/speed_corr``, ``val/gesture``), so the
two priors can be compared. The snapshot holds the EMA network and {denoiser, autoregressive,
normalisation, window}; ``prior.build_prior`` rebuilds it.
"""

from __future__ import annotations

import copy
import logging
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from torch import nn

from models.autoregressive import ar_sample, ar_training_loss
from models.config import from_dict
from models.motion_denoiser import MotionDenoiserConfig
from pipelines.train.harness import (
    capture_rng,
    crossed,
    derive_seed,
    ema_update,
    failing_rank,
    is_rank_zero,
    kill_this_worker,
    learning_rate,
    load_checkpoint,
    per_rank_batch,
    report_checkpoint,
    restore_rng,
    run_training,
    set_learning_rate,
)
from pipelines.train.motion_data import NormStats, ValWindows, check_features, endless_windows, features_fingerprint
from pipelines.train.prior import (
    build_prior,
    denoiser_config,
    load_training_data,
    load_val,
    prior_snapshot_config,
    training_state,
)
from pipelines.train.prior_config import PriorARConfig
from pipelines.train.prior_eval import motion_metrics, speed_correlation, trajectory_figure
from storage.tracking import NullRun, resume_stage_run
from storage.uri import Storage

log = logging.getLogger(__name__)
STAGE = "train_prior_ar"


class ConfiguredNet:
    """A (DDP-wrapped) network as ``ar_training_loss`` wants it: callable, with the network's ``cfg``
    (DDP does not forward attributes of the module it wraps)."""

    def __init__(self, model: nn.Module, cfg: MotionDenoiserConfig) -> None:
        self.model, self.cfg = model, cfg

    def __call__(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self.model(*args, **kwargs)


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


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 5, in EDM's order. ``config``: see ``harness.run_training``."""
    import ray.train
    import ray.train.torch

    # Initialise.
    cfg = from_dict(PriorARConfig, config["cfg"])
    s, v, context = cfg.schedule, cfg.validation, ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    lead, device, storage = is_rank_zero(rank), ray.train.torch.get_device(), Storage(cfg.s3)
    batch_gpu = per_rank_batch(s.batch_size, world_size, s.accum_rounds)
    torch.manual_seed(derive_seed(s.seed, 0, 0))  # the same initial weights on every rank
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.mixed_precision and device.type == "cuda")

    # Load data.
    log.info("Loading features from %s (rank %d of %d)...", cfg.features, rank, world_size)
    clips, norm = load_training_data(cfg.features, rank, world_size, storage, device)
    val = load_val(cfg.features, storage, norm, cfg.data.window, v.max_clips) if lead else None

    # Construct networks.
    denoiser = denoiser_config(cfg.model, len(norm.nl_mean), len(norm.audio_mean), causal=True)
    snapshot_config = prior_snapshot_config(denoiser, norm, cfg.data.window, autoregressive=cfg.autoregressive)
    log.info("Constructing the AR prior (%s preset, f_nl %d, f_a %d)...", cfg.model, denoiser.nl_dim,
             denoiser.audio_dim)
    net = build_prior(snapshot_config).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)

    # Set up the optimizer.
    optimizer = torch.optim.Adam(net.parameters(), lr=s.lr)

    # Resume training from the last checkpoint, if any.
    shared, own = load_checkpoint(rank)
    step, cur_nsamples, epoch, position = 0, 0, 0, 0
    if shared is not None:
        log.info("Resuming from step %d (%d samples)...", shared["step"], shared["cur_nsamples"])
        net.load_state_dict(shared["model"])
        ema.load_state_dict(shared["ema"])
        optimizer.load_state_dict(shared["optimizer"])
        step, cur_nsamples = shared["step"], shared["cur_nsamples"]
    torch.manual_seed(derive_seed(s.seed, rank, 1))  # each rank's own stream from here on (dropout)
    if own is not None:
        restore_rng(own["rng"])
        epoch, position = own["epoch"], own["position"]
    fresh_start = shared is None
    model = ray.train.torch.prepare_model(net)  # DDP when world_size > 1
    trained = ConfiguredNet(model, denoiser)
    batches = endless_windows(clips, cfg.data.window, batch_gpu, s.seed, rank, epoch, position)
    tracker = resume_stage_run(cfg.tracking, config["run_id"]) if lead else NullRun()
    if not fresh_start:
        tracker.log_metrics({"progress/resumed_from_nsamples": cur_nsamples}, step)

    # Train.
    log.info("Training for %d samples from %d...", s.total_samples, cur_nsamples)
    tick_nsamples, tick_time = cur_nsamples, time.perf_counter()
    while cur_nsamples < s.total_samples:
        # Accumulate gradients.
        optimizer.zero_grad(set_to_none=True)
        terms: list[dict[str, float]] = []
        for round_idx in range(s.accum_rounds):
            epoch, position, batch = next(batches)
            x0, audio, valid = (batch[k].to(device) for k in ("x0", "audio", "valid"))  # (b, W, N), (b, W, A), (b, W)
            sync_now = round_idx == s.accum_rounds - 1 or world_size == 1
            with nullcontext() if sync_now else model.no_sync():
                with autocast:
                    losses = ar_training_loss(trained, cfg.autoregressive, x0, audio, valid)
                (losses["loss"] / s.accum_rounds).backward()
            terms.append({k: float(t.detach()) for k, t in losses.items()})

        # Update weights.
        lr = learning_rate(cur_nsamples, s)
        set_learning_rate(optimizer, lr)
        grad_norm = nn.utils.clip_grad_norm_(net.parameters(), s.grad_clip if s.grad_clip > 0 else float("inf"))
        optimizer.step()
        ema_update(ema, net, s.ema_decay)
        prev_nsamples, cur_nsamples, step = cur_nsamples, cur_nsamples + s.batch_size, step + 1
        done = cur_nsamples >= s.total_samples
        if fresh_start and config.get("fail_at_step") == step and rank == failing_rank(world_size):
            kill_this_worker(f"injected failure after step {step} on rank {rank} (tests)")

        # Maintenance: log progress.
        if crossed(prev_nsamples, cur_nsamples, s.log_every_samples) or done:
            now = time.perf_counter()
            speed = (cur_nsamples - tick_nsamples) / max(now - tick_time, 1e-9)
            tracker.log_metrics({**{f"train/{k}": float(np.mean([t[k] for t in terms])) for k in terms[0]},
                                 "train/lr": lr, "train/grad_norm": float(grad_norm), "train/samples_per_s": speed,
                                 "progress/nsamples": cur_nsamples}, step)
            tick_nsamples, tick_time = cur_nsamples, now

        # Maintenance: validate and save the training state (the last one is saved after the loop).
        if crossed(prev_nsamples, cur_nsamples, s.checkpoint_every_samples) and not done:
            metrics, _ = validate_ar(ema, val, norm)
            tracker.log_metrics(metrics, step)
            report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                              {"rng": capture_rng(), "epoch": epoch, "position": position},
                              training_state(net, ema, optimizer, step, cur_nsamples) if lead else None)
            tick_time = time.perf_counter()  # the speed excludes validation

    # Finish: validate, draw generated trajectories, save the final state with the snapshot.
    metrics, samples = validate_ar(ema, val, norm)
    tracker.log_metrics(metrics, step)
    if val is not None and v.figure_clips:
        clips_shown = v.figure_clips
        tracker.log_figure(trajectory_figure(val.truth[:clips_shown], {"AR prior": samples[:clips_shown]},
                                             val.keys[:clips_shown], v.figure_components,
                                             f"AR prior (EMA, step {step}): val f_nl principal components"),
                           "trajectories.png")
    report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": epoch, "position": position},
                      training_state(net, ema, optimizer, step, cur_nsamples) if lead else None,
                      (snapshot_config, ema) if lead else None)
    log.info("Done after %d steps (%d samples).", step, cur_nsamples)


def train_prior_ar(cfg: PriorARConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 5 on Ray Train and write its snapshot to ``cfg.out``; returns Ray's ``Result``."""
    storage = Storage(cfg.s3)
    check_features(cfg.features, storage)
    return run_training(train_loop_per_worker, cfg, STAGE, {"features": features_fingerprint(cfg.features, storage)},
                        fail_at_step)
