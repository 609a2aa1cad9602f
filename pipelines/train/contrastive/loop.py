"""Stage 1, ``train_contrastive``: the audio encoder E_a and the visual encoder E_v with MLP_cl, trained with
the CLIP-style loss L_cl (TH-PAD supplement §I.3; docs/paper-notes.md §1.5). The audio window and the frame of the
same clip and time are a positive pair; the other pairs of the batch, and the audio features of past
batches held in the memory bank MB, are the negatives. Validation: audio→frame retrieval on val pairs.
Before L_cl, on a fresh start, E_v can be pretrained on the mouth's landmark motion (``pretrain_visual``), our
stand-in for the paper's pretrained E_v.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from thpad.codec import from_dict, to_dict
from thpad.models.contrastive_net import ContrastiveNet, build_net
from thpad.models.losses import info_nce_loss
from thpad.models.memory_bank import MEMORY_BANK_PRESETS, MemoryBank
from thpad.models.talking_head import TALKING_HEAD_PRESETS
from thpad.pipelines.train.contrastive.config import ContrastiveConfig
from thpad.pipelines.train.contrastive.validate import load_val_pairs, similarity_figure, validate
from thpad.pipelines.train.frames import MEL_BINS_PER_FRAME, FrameDataset, FrameSamplingConfig, endless_batches
from thpad.pipelines.train.harness import (
    History,
    capture_rng,
    crossed,
    ema_update,
    failing_rank,
    gather_rows,
    init_worker,
    kill_this_worker,
    learning_rate,
    pretrain,
    report_checkpoint,
    resume,
    run_training,
    set_learning_rate,
    step_with_averaged_gradients,
)
from thpad.pipelines.train.landmark_motion import landmark_head, landmark_motion_loss
from thpad.storage.dvc_outputs import TRAIN, VAL
from thpad.storage.fingerprint import shards_fingerprint
from thpad.storage.manifest import identity_indices, list_shards, manifest_uri, read_manifest
from thpad.storage.tracking import NullRun, StageRun, resume_stage_run
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)
STAGE = "train_contrastive"


def net_config(cfg: ContrastiveConfig) -> dict[str, Any]:
    """The snapshot's JSON config: enough to rebuild the network with ``build_net``."""
    preset = TALKING_HEAD_PRESETS[cfg.model]
    return {"audio": to_dict(preset.audio), "visual": to_dict(preset.visual),
            "init_temperature": cfg.init_temperature}


def frame_sampling(cfg: ContrastiveConfig) -> FrameSamplingConfig:
    """The reader's settings, derived from the model preset (image size, window width) and the data params;
    the frames carry their landmark motion when E_v warms up on it."""
    preset, warmup = TALKING_HEAD_PRESETS[cfg.model], cfg.landmark_motion
    return FrameSamplingConfig(num_identity_frames=0, min_identity_distance=1, image_size=preset.visual.image_size,
                               frames_per_window=preset.audio.n_frames // MEL_BINS_PER_FRAME,
                               samples_per_clip=cfg.data.samples_per_clip, shuffle_buffer=cfg.data.shuffle_buffer,
                               seed=cfg.schedule.seed, motion_points=warmup.points if warmup.pretrain_samples else None,
                               motion_min_std=warmup.min_std, closure=warmup.closure,
                               closure_min_std=warmup.closure_min_std)


def pretrain_visual(net: ContrastiveNet, batches: Iterator[tuple[int, int, dict[str, Any]]], cfg: ContrastiveConfig,
                   device: torch.device, world_size: int, tracker: StageRun) -> None:
    """E_v's warm-up before L_cl (``landmark_motion.pretrain_samples``; our stand-in for the paper's pretrained
    E_v): the backbone and a linear head on f_v regress each frame's landmark motion within its clip (the
    mouth's by default), under Adam at ``pretrain_lr`` with gradients averaged over the ranks. From random
    weights, L_cl alone can idle at clip recognition for most of the stage before E_v finds the mouth
    (docs/training-notes.md §3.2). The head is dropped afterwards. Logs ``pretrain/lmk`` every 10 updates (rank 0's
    tracker)."""
    p, visual = cfg.landmark_motion, net.visual_encoder
    head = landmark_head(visual.cfg.feature_dim, p).to(device)

    def loss_of(batch: dict[str, Any]) -> torch.Tensor:
        image, target = batch["image"].to(device), batch["landmark_motion"].to(device)  # (b, 3, S, S), (b, D)
        return landmark_motion_loss(head, visual.encode(image), target, p)  # encode: (b, feature_dim)

    pretrain([*visual.backbone.parameters(), *head.parameters()], loss_of, batches,
             -(-p.pretrain_samples // cfg.schedule.batch_size), p.pretrain_lr, world_size, cfg.schedule.grad_clip,
             tracker, "pretrain/lmk")


def training_state(net: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, bank: MemoryBank,
                   history: History, step: int, cur_nsamples: int) -> dict[str, Any]:
    """What rank 0 stores in each checkpoint (everything shared by all ranks)."""
    return {"model": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "bank": bank.state_dict(), "history": history.state_dict(), "step": step, "cur_nsamples": cur_nsamples}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 1, in EDM's order. ``config``: see ``harness.run_training``."""

    # Initialise.
    cfg = from_dict(ContrastiveConfig, config["cfg"])
    s, w = cfg.schedule, init_worker(cfg.schedule, cfg.s3)  # same initial weights on every rank
    rank, world_size, lead, device, storage = w.rank, w.world_size, w.lead, w.device, w.storage
    batch_gpu, autocast = w.batch_gpu, w.autocast

    # Load data.
    log.info("Loading data from %s (rank %d of %d)...", cfg.shards, rank, world_size)
    sampling = frame_sampling(cfg)
    identities = identity_indices(read_manifest(manifest_uri(cfg.shards), storage))
    dataset = FrameDataset(list_shards(cfg.shards, "train", storage), storage, sampling, identities, rank, world_size)
    val = None
    if lead:
        val = load_val_pairs(list_shards(cfg.shards, "val", storage), storage, cfg.validation.pairs,
                             cfg.validation.frames_per_clip, sampling)

    # Construct networks.
    log.info("Constructing networks (%s preset)...", cfg.model)
    net = build_net(net_config(cfg)).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    bank = MemoryBank(MEMORY_BANK_PRESETS[cfg.memory_bank]).to(device)
    history = History()  # the curves, for the stage's DVC plots

    # Set up the optimizer.
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=s.lr)

    # Resume training from the last checkpoint, if any.
    progress = resume(rank, s.seed, {"model": net, "ema": ema, "optimizer": optimizer, "bank": bank,
                                     "history": history}, "batch")
    step, cur_nsamples, epoch, position = progress.step, progress.cur_nsamples, progress.epoch, progress.position
    fresh_start = not progress.resumed
    batches = endless_batches(dataset, batch_gpu, cfg.data.loader_workers, epoch, position)
    tracker = resume_stage_run(cfg.tracking, config["run_id"]) if lead else NullRun()
    if fresh_start and cfg.landmark_motion.pretrain_samples > 0:
        log.info("Pretraining E_v on L_lmk for %d samples...", cfg.landmark_motion.pretrain_samples)
        pretrain_visual(net, batches, cfg, device, world_size, tracker)
        ema_update(ema, net, 0.0)  # the EMA starts from the warmed-up E_v
    if not fresh_start:
        tracker.log_metrics({"progress/resumed_from_nsamples": cur_nsamples}, step)

    # Train.
    log.info("Training for %d samples from %d...", s.total_samples, cur_nsamples)
    tick_nsamples, tick_time = cur_nsamples, time.perf_counter()
    while cur_nsamples < s.total_samples:
        # Accumulate gradients.
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for _ in range(s.accum_rounds):
            epoch, position, batch = next(batches)
            mel = batch["mel"].to(device)[:, None]  # (b, 1, n_mels, n_frames)
            image = batch["image"].to(device)  # (b, 3, S, S)
            with autocast:
                f_a, f_cl, scale = net(mel, image)  # (b, D), (b, D), ()
            loss = info_nce_loss(f_cl.float(), f_a.float(), scale, bank.negatives())
            (loss / s.accum_rounds).backward()
            bank.push(gather_rows(f_a.detach().float(), world_size))  # all ranks' audio features, rank order
            losses.append(loss.item())

        # Update weights.
        lr = learning_rate(cur_nsamples, s)
        set_learning_rate(optimizer, lr)
        grad_norm = step_with_averaged_gradients(optimizer, world_size, s.grad_clip)
        ema_update(ema, net, s.ema_decay)
        prev_nsamples, cur_nsamples, step = cur_nsamples, cur_nsamples + s.batch_size, step + 1
        done = cur_nsamples >= s.total_samples
        if fresh_start and config.get("fail_at_step") == step and rank == failing_rank(world_size):
            kill_this_worker(f"injected failure after step {step} on rank {rank} (tests)")

        # Maintenance: log progress.
        if crossed(prev_nsamples, cur_nsamples, s.log_every_samples) or done:
            now = time.perf_counter()
            speed = (cur_nsamples - tick_nsamples) / max(now - tick_time, 1e-9)
            train = {"train/loss": float(np.mean(losses))}
            history.add(TRAIN, step, cur_nsamples, train)
            tracker.log_metrics({**train, "train/lr": lr,
                                 "train/grad_norm": float(grad_norm), "train/logit_scale": float(scale.detach()),
                                 "train/samples_per_s": speed, "progress/nsamples": cur_nsamples}, step)
            tick_nsamples, tick_time = cur_nsamples, now

        # Maintenance: save the training state (the last one is saved after the loop, with the snapshot).
        if crossed(prev_nsamples, cur_nsamples, s.checkpoint_every_samples) and not done:
            metrics, _ = validate(net, ema, val)
            tracker.log_metrics(metrics, step)
            history.add(VAL, step, cur_nsamples, metrics)
            report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                              {"rng": capture_rng(), "epoch": epoch, "batch": position},
                              training_state(net, ema, optimizer, bank, history, step, cur_nsamples) if lead else None)

    # Finish: validate, draw the retrieval matrix, save the final state with the snapshot.
    metrics, sim = validate(net, ema, val)
    tracker.log_metrics(metrics, step)
    history.add(VAL, step, cur_nsamples, metrics)
    if sim is not None:
        tracker.log_figure(similarity_figure(sim, f"audio-to-frame similarity (EMA, step {step})"),
                           "retrieval_matrix.png")
    report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": epoch, "batch": position},
                      training_state(net, ema, optimizer, bank, history, step, cur_nsamples) if lead else None,
                      (net_config(cfg), ema) if lead else None)
    log.info("Done after %d steps (%d samples).", step, cur_nsamples)


def train_contrastive(cfg: ContrastiveConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 1 on Ray Train and write its snapshot to ``cfg.out``; returns Ray's ``Result``."""
    inputs = {"shards": shards_fingerprint(cfg.shards, Storage(cfg.s3))}
    networks = {"model": net_config(cfg), "memory_bank": to_dict(MEMORY_BANK_PRESETS[cfg.memory_bank])}
    return run_training(train_loop_per_worker, cfg, STAGE, inputs, networks, fail_at_step)
