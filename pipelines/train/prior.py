"""Stage 4, ``train_prior``: the audio-to-non-lip diffusion prior P_a2nl (TH-PAD supplement §I.3/§I.4,
paper_spec §1.6), a bidirectional transformer predicting the clean f_nl window from noisy f_nl and the
audio features f_a, trained with L_a2nl + L_vel, mask editing and condition dropout
(``models.diffusion.process.training_loss``).

Validation (rank 0, EMA network, at every checkpoint and at the end): the first window of each val clip is
sampled with the validation sampler at the guidance scale s and at s = 0 (unconditional), with the same
noise seeds, and compared with the true f_nl (``prior_eval``: Fréchet distances of frames and velocities,
speed correlations). The snapshot holds the EMA denoiser and {denoiser, diffusion, normalisation, window};
``build_prior``, ``prior_schedule`` and ``prior_normalisation`` rebuild what sampling needs.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from models.autoregressive import ar_sample_long
from models.config import from_dict, to_dict
from models.diffusion.process import DiffusionConfig, NoiseSchedule, training_loss
from models.diffusion.sampling import SamplerConfig, sample, sample_long
from models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser, MotionDenoiserConfig
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
from pipelines.train.motion_data import (
    MotionClip,
    NormStats,
    ValWindows,
    check_features,
    endless_windows,
    features_fingerprint,
    moments,
    normalise_clips,
    rank_clips,
    read_clips,
    stats_from_moments,
    val_windows,
)
from pipelines.train.prior_config import PriorConfig, PriorValidationParams
from pipelines.train.prior_eval import motion_metrics, speed_correlation, trajectory_figure
from storage.features import list_feature_files
from storage.tracking import NullRun, resume_stage_run
from storage.uri import Storage

log = logging.getLogger(__name__)
STAGE = "train_prior"
FIGURE_SEEDS = 2  # guided samples per clip drawn in the figure (the unconditional one: 1)


# Networks and snapshots.

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


# Validation.

@torch.no_grad()
def sample_val(net: nn.Module, schedule: NoiseSchedule, v: PriorValidationParams, val: ValWindows,
               norm: NormStats, guidance: float, seed: int) -> list[np.ndarray]:
    """Sample the val windows (no known frames) and return the un-normalised real frames, V x (T_i, N)."""
    device = next(net.parameters()).device
    steps = v.num_steps if v.sampler == "ddim" else None  # DDPM always runs all T steps
    sampler = SamplerConfig(guidance=guidance, sampler=v.sampler, num_steps=steps, eta=v.eta,
                            window=val.audio.shape[1])
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


def prior_figure(val: ValWindows, samples: Mapping[float, Sequence[Sequence[np.ndarray]]], clips: int,
                 components: int, title: str) -> Figure:
    """The first ``clips`` val clips: guided samples (2 seeds) and one unconditional sample against the truth."""
    curves = {}
    for guidance, runs in samples.items():
        for k, run in enumerate(runs[:FIGURE_SEEDS if guidance else 1]):
            curves[f"s={guidance:g}, seed {k}"] = run[:clips]
    return trajectory_figure(val.truth[:clips], curves, val.keys[:clips], components, title)


def training_state(net: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, step: int,
                   cur_nsamples: int) -> dict[str, Any]:
    """What rank 0 stores in each checkpoint."""
    return {"model": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "step": step, "cur_nsamples": cur_nsamples}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 4, in EDM's order. ``config``: see ``harness.run_training``."""
    import ray.train
    import ray.train.torch

    # Initialise.
    cfg = from_dict(PriorConfig, config["cfg"])
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
    denoiser = denoiser_config(cfg.model, len(norm.nl_mean), len(norm.audio_mean), causal=False)
    snapshot_config = prior_snapshot_config(denoiser, norm, cfg.data.window, diffusion=cfg.diffusion)
    log.info("Constructing the diffusion prior (%s preset, f_nl %d, f_a %d)...", cfg.model, denoiser.nl_dim,
             denoiser.audio_dim)
    net = build_prior(snapshot_config).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    schedule = NoiseSchedule(cfg.diffusion)

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
    torch.manual_seed(derive_seed(s.seed, rank, 1))  # each rank's own stream from here on (t, noise, masks)
    if own is not None:
        restore_rng(own["rng"])
        epoch, position = own["epoch"], own["position"]
    fresh_start = shared is None
    model = ray.train.torch.prepare_model(net)  # DDP when world_size > 1
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
                    losses = training_loss(model, schedule, cfg.diffusion, x0, audio, valid)
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
            metrics, _ = validate_prior(ema, schedule, v, val, norm)
            tracker.log_metrics(metrics, step)
            report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                              {"rng": capture_rng(), "epoch": epoch, "position": position},
                              training_state(net, ema, optimizer, step, cur_nsamples) if lead else None)
            tick_time = time.perf_counter()  # the speed excludes validation

    # Finish: validate, draw sampled trajectories, save the final state with the snapshot.
    metrics, samples = validate_prior(ema, schedule, v, val, norm)
    tracker.log_metrics(metrics, step)
    if val is not None and v.figure_clips:
        tracker.log_figure(prior_figure(val, samples, v.figure_clips, v.figure_components,
                                        f"diffusion prior (EMA, step {step}): val f_nl principal components"),
                           "trajectories.png")
    report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": epoch, "position": position},
                      training_state(net, ema, optimizer, step, cur_nsamples) if lead else None,
                      (snapshot_config, ema) if lead else None)
    log.info("Done after %d steps (%d samples).", step, cur_nsamples)


def train_prior(cfg: PriorConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 4 on Ray Train and write its snapshot to ``cfg.out``; returns Ray's ``Result``."""
    storage = Storage(cfg.s3)
    check_features(cfg.features, storage)
    return run_training(train_loop_per_worker, cfg, STAGE, {"features": features_fingerprint(cfg.features, storage)},
                        fail_at_step)
