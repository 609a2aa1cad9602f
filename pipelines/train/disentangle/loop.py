"""Stage 2, ``train_disentangle``: reconstruction learning of the non-lip space (TH-PAD supplement §I.3, Eq. I-IV).

The generator G rebuilds a driving frame from identity frames of the same clip (E_id: f_id and the 7x7 map),
the non-lip code f_nl = MLP_nl(MLP_ol(E_v(augmented frame))) and the lip code f_l = MLP_a2l(E_a(mel)), under
L_G = l_ol L_ol + l_gaze L_gaze + l_L1 L_L1 + l_GAN L_GAN + l_VGG L_VGG (+ l_cl L_cl, below); D is the
two-scale PatchGAN. E_a and E_v (with MLP_cl) start from stage 1; E_a stays frozen.

Where the paper is silent, what we chose:

- Memory bank. The supplement states MB (K = 32 batches, "512 features in total") in the disentanglement
  paragraph, at that stage's batch size 16, not in the contrastive one (batch 288), and L_ol, a per-frame
  orthogonality, has no negatives. We read it as: this stage keeps training L_cl (InfoNCE between f_cl and
  f_a, CLIP-style as in stage 1) with the bank of past f_a as extra negatives, which a batch of 16 needs;
  the "two MLPs of E_v" with their own learning rate are then MLP_ol and MLP_cl. Its weight is
  ``loss.weights.cl`` (0 drops the term and freezes MLP_cl). E_a is frozen, so the queued f_a never go stale.
- E_v's backbone. The paper's is pretrained as in LPD; we have no such weights, so with
  ``train_visual_backbone`` it trains here with LPD's recipe: E_v sees the driving frame under strong pixel
  and affine augmentation (``disentangle/augment.py``), G rebuilds the clean frame, and the identity frames
  come from the same clip at least ``data.min_identity_distance`` frames away. L_cl reaches MLP_cl only
  (f_v detached): stage 1 made the backbone audio-aligned and nearly blind to pose, and L_cl would keep
  pulling it there while reconstruction is to teach it pose.
- Order and parallelism. Each update is a D step then a G step on the same fakes (with several accumulation
  rounds the G step recomputes them). Gradients are averaged by hand per step, as in every stage
  (``harness.step_with_averaged_gradients``).
- Phase two ("after the 40k-th step, we freeze other modules and train only G and D"): from
  ``phase_two.start_samples`` the encoders are frozen and in eval mode (BatchNorm statistics fixed), and G and
  D follow the ``phase_two`` schedule. Frozen modules always run in eval mode.
- Validation (rank 0, EMA networks, no generator noise): reconstruction L1 and PSNR of val driving frames
  from same-clip identity frames; how much G relies on f_nl and whether f_nl has collapsed (see
  ``validate``); and a linear probe of the corpus's true motion from f_nl and from f_l
  (``pipelines/metrics/probe.py``), skipped on data without truth. The probe centres features and truth per clip:
  it scores how a feature follows the motion within a clip, which is what "tracking" pose means, and not
  per-clip offsets (each val clip of the sample corpus is another identity, whose offsets a linear probe
  fitted on other identities cannot place; even raw pixels score near 0 on uncentred yaw).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from thpad.codec import from_dict
from thpad.models.losses import (
    weighted_total,
)
from thpad.models.memory_bank import MEMORY_BANK_PRESETS, MemoryBank
from thpad.models.talking_head import talking_head_snapshot_config
from thpad.pipelines.train.disentangle.config import DisentangleConfig, talking_head_config
from thpad.pipelines.train.disentangle.data import frame_sampling, load_val_set, make_round
from thpad.pipelines.train.disentangle.inputs import check_inputs, read_contrastive
from thpad.pipelines.train.disentangle.losses import (
    discriminator_loss,
    generator_terms,
    pretrain_pixels,
    pretrain_visual,
)
from thpad.pipelines.train.disentangle.networks import (
    PHASE_TWO,
    LossNets,
    apply_phase,
    build_landmark_head,
    build_loss_nets,
    build_networks,
    group_learning_rates,
    make_optimizers,
    network_configs,
    phase_of,
    set_group_learning_rates,
)
from thpad.pipelines.train.disentangle.validate import grid_figure, validate
from thpad.pipelines.train.frames import FrameDataset, endless_batches
from thpad.pipelines.train.harness import (
    History,
    Meter,
    capture_rng,
    crossed,
    ema_update,
    failing_rank,
    gather_rows,
    init_worker,
    kill_this_worker,
    report_checkpoint,
    resume,
    run_training,
    step_with_averaged_gradients,
)
from thpad.storage.dvc_outputs import TRAIN, VAL
from thpad.storage.fingerprint import file_fingerprint, shards_fingerprint
from thpad.storage.manifest import identity_indices, list_shards, manifest_uri, read_manifest
from thpad.storage.tracking import NullRun, StageRun, resume_stage_run
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)
STAGE = "train_disentangle"
GRAD_NORM = "train/grad_norm"  # the meter's figures that are no loss terms (train/grad_norm_g, _d)


# Inputs: the stage-1 snapshot and optional weight files.


# Networks, phases and learning rates.


# Data.


# Losses.


# Validation.


def training_state(head: nn.Module, ema: nn.Module, disc: nn.Module, logit_scale: nn.Module,
                   optimizers: Sequence[torch.optim.Optimizer], bank: MemoryBank, history: History, step: int,
                   cur_nsamples: int, landmark: nn.Module | None = None) -> dict[str, Any]:
    """What rank 0 stores in each checkpoint (everything shared by all ranks)."""
    extra = {} if landmark is None else {"landmark_head": landmark.state_dict()}
    return {"model": head.state_dict(), "ema": ema.state_dict(), "discriminator": disc.state_dict(),
            "logit_scale": logit_scale.state_dict(), "opt_g": optimizers[0].state_dict(),
            "opt_d": optimizers[1].state_dict(), "bank": bank.state_dict(), "history": history.state_dict(),
            "step": step, "cur_nsamples": cur_nsamples, **extra}


def announce_feature_losses(loss_nets: LossNets, tracker: StageRun, lead: bool) -> None:
    """Say once (rank 0) which pretrained-feature losses run, and tag the run with their status."""
    if not lead:
        return
    for name, net in (("vgg", loss_nets.vgg), ("gaze", loss_nets.gaze)):
        (log.info if net.available else log.warning)("L_%s: %s", name, net.status)
    tracker.set_tags({"thpad.loss.vgg": loss_nets.vgg.status, "thpad.loss.gaze": loss_nets.gaze.status})


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 2, in EDM's order. ``config``: see ``harness.run_training``."""

    # Initialise.
    cfg = from_dict(DisentangleConfig, config["cfg"])
    s, w = cfg.schedule, init_worker(cfg.schedule, cfg.s3)  # same initial weights on every rank
    rank, world_size, lead, device, storage = w.rank, w.world_size, w.lead, w.device, w.storage
    batch_gpu, autocast = w.batch_gpu, w.autocast
    tracker = resume_stage_run(cfg.tracking, config["run_id"]) if lead else NullRun()

    # Load data.
    log.info("Loading data from %s (rank %d of %d)...", cfg.shards, rank, world_size)
    sampling = frame_sampling(cfg)
    identities = identity_indices(read_manifest(manifest_uri(cfg.shards), storage))
    dataset = FrameDataset(list_shards(cfg.shards, "train", storage), storage, sampling, identities, rank, world_size)
    val = load_val_set(list_shards(cfg.shards, "val", storage), storage, cfg, sampling) if lead else None
    if val is not None and val.truth is None:
        log.info("The val clips carry no motion truth (real data): the motion probe is skipped.")

    # Construct networks.
    log.info("Constructing networks (%s preset, stage 1 from %s)...", cfg.model, cfg.contrastive)
    head, logit_scale, disc = build_networks(cfg, read_contrastive(cfg.contrastive, storage, cfg.model))
    head, logit_scale, disc = head.to(device), logit_scale.to(device), disc.to(device)
    landmark = build_landmark_head(cfg)
    landmark = None if landmark is None else landmark.to(device)
    ema = copy.deepcopy(head).eval().requires_grad_(False)
    bank = MemoryBank(MEMORY_BANK_PRESETS[cfg.memory_bank]).to(device)
    history = History()  # the curves, for the stage's DVC plots
    loss_nets = build_loss_nets(cfg, device)
    announce_feature_losses(loss_nets, tracker, lead)

    # Set up the optimizers.
    optimizers = make_optimizers(head, logit_scale, disc, cfg, landmark)

    # Resume training from the last checkpoint, if any.
    stateful = {"model": head, "ema": ema, "discriminator": disc, "logit_scale": logit_scale,
                "opt_g": optimizers[0], "opt_d": optimizers[1], "bank": bank, "history": history}
    progress = resume(rank, s.seed, stateful | ({} if landmark is None else {"landmark_head": landmark}), "batch")
    step, cur_nsamples, epoch, position = progress.step, progress.cur_nsamples, progress.epoch, progress.position
    fresh_start = not progress.resumed
    batches = endless_batches(dataset, batch_gpu, cfg.data.loader_workers, epoch, position)
    if fresh_start and landmark is not None and cfg.loss.landmark_motion.pretrain_samples > 0:
        log.info("Pretraining E_v on L_lmk for %d samples...", cfg.loss.landmark_motion.pretrain_samples)
        pretrain_visual(head, landmark, batches, cfg, device, world_size, tracker)
    if fresh_start and cfg.pixel_pretrain.samples > 0:
        log.info("Pretraining on reconstruction without the GAN for %d samples...", cfg.pixel_pretrain.samples)
        pretrain_pixels(head, logit_scale, landmark, batches, cfg, device, world_size, tracker)
    if fresh_start:
        ema_update(ema, head, 0.0)  # the EMA starts from the pretrained networks
        start = validate(ema, val, cfg)[0]  # the starting point of the validation curves
        tracker.log_metrics(start, 0)
        history.add(VAL, 0, 0, start)
    else:
        tracker.log_metrics({"progress/resumed_from_nsamples": cur_nsamples}, step)

    # Train.
    log.info("Training for %d samples from %d (phase two from %d)...", s.total_samples, cur_nsamples,
             cfg.phase_two.start_samples)
    phase, meter = 0, Meter()
    tick_nsamples, tick_time = cur_nsamples, time.perf_counter()
    while cur_nsamples < s.total_samples:
        if phase_of(cur_nsamples, cfg) != phase:
            phase = phase_of(cur_nsamples, cfg)
            apply_phase(head, logit_scale, cfg, phase, landmark)
            log.info("Phase %d from %d samples: training %s.", phase, cur_nsamples,
                     "G and D only" if phase == PHASE_TWO else "everything but the frozen encoders")
        lrs = group_learning_rates(cur_nsamples, cfg)
        set_group_learning_rates(optimizers, lrs)
        rounds = []
        for _ in range(s.accum_rounds):
            epoch, position, batch = next(batches)
            rounds.append(make_round(batch, cfg, device))

        # Discriminator step (the fakes keep their graph for the G step when there is one round).
        outs, keep_graph = [], s.accum_rounds == 1
        for r in rounds:
            with torch.set_grad_enabled(keep_graph), autocast:
                outs.append(head(r.identity, r.driving, r.mel))
            with autocast:
                loss_d = discriminator_loss(disc, r, outs[-1].image, cfg)
            (loss_d / s.accum_rounds).backward()
            meter.add({"train/loss_d": loss_d.item()})
        grad_norm_d = step_with_averaged_gradients(optimizers[1], world_size, s.grad_clip)

        # Generator step, through the frozen D.
        disc.requires_grad_(False)
        for i, r in enumerate(rounds):
            with autocast:
                out = outs[i] if keep_graph else head(r.identity, r.driving, r.mel)
                terms = generator_terms(out, r, disc, loss_nets, head.visual_encoder.mlp_cl, logit_scale, bank, cfg,
                                        phase, landmark)
                loss_g = weighted_total(terms, cfg.loss.weights)
            (loss_g / s.accum_rounds).backward()
            bank.push(gather_rows(out.f_a.detach().float(), world_size))  # all ranks' audio features, rank order
            meter.add({"train/loss_g": loss_g.item(), "train/l1": float((out.image.detach() - r.real).abs().mean()),
                       **{f"train/{name}": value.item() for name, value in terms.items()}})
        disc.requires_grad_(True)
        grad_norm_g = step_with_averaged_gradients(optimizers[0], world_size, s.grad_clip)

        # Update the EMA and the progress.
        ema_update(ema, head, s.ema_decay)
        prev_nsamples, cur_nsamples, step = cur_nsamples, cur_nsamples + s.batch_size, step + 1
        done = cur_nsamples >= s.total_samples
        meter.add({"train/grad_norm_g": grad_norm_g, "train/grad_norm_d": grad_norm_d})
        if fresh_start and config.get("fail_at_step") == step and rank == failing_rank(world_size):
            kill_this_worker(f"injected failure after step {step} on rank {rank} (tests)")

        # Maintenance: log progress.
        if crossed(prev_nsamples, cur_nsamples, s.log_every_samples) or done:
            now = time.perf_counter()
            speed = (cur_nsamples - tick_nsamples) / max(now - tick_time, 1e-9)
            means = meter.means()
            history.add(TRAIN, step, cur_nsamples, {k: v for k, v in means.items() if not k.startswith(GRAD_NORM)})
            tracker.log_metrics({**means, **{f"train/lr_{name}": lr for name, lr in lrs.items()},
                                 "train/samples_per_s": speed, "progress/nsamples": cur_nsamples,
                                 "progress/phase": phase}, step)
            tick_nsamples, tick_time = cur_nsamples, now

        # Maintenance: save the training state (the last one is saved after the loop, with the snapshot).
        if crossed(prev_nsamples, cur_nsamples, s.checkpoint_every_samples) and not done:
            metrics, _ = validate(ema, val, cfg)
            tracker.log_metrics(metrics, step)
            history.add(VAL, step, cur_nsamples, metrics)
            state = training_state(head, ema, disc, logit_scale, optimizers, bank, history, step, cur_nsamples,
                                   landmark)
            report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                              {"rng": capture_rng(), "epoch": epoch, "batch": position}, state if lead else None)
            tick_time = time.perf_counter()  # validation and checkpointing are not training speed

    # Finish: validate, draw the reconstruction grid, save the final state with the snapshot.
    metrics, grid = validate(ema, val, cfg)
    tracker.log_metrics(metrics, step)
    history.add(VAL, step, cur_nsamples, metrics)
    if grid is not None:
        tracker.log_figure(grid_figure(grid, f"val reconstructions (EMA, step {step})"), "recon_grid.png")
    report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": epoch, "batch": position},
                      training_state(head, ema, disc, logit_scale, optimizers, bank, history, step, cur_nsamples,
                                     landmark) if lead else None,
                      (talking_head_snapshot_config(talking_head_config(cfg)), ema) if lead else None)
    log.info("Done after %d steps (%d samples).", step, cur_nsamples)


def train_disentangle(cfg: DisentangleConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 2 on Ray Train and write its snapshot (the EMA talking head) to ``cfg.out``; returns Ray's
    ``Result``. Inputs are checked first (``check_inputs``), so a bad one fails before Ray starts."""
    cfg = check_inputs(cfg)
    storage = Storage(cfg.s3)
    inputs = {"shards": shards_fingerprint(cfg.shards, storage),
              "contrastive": file_fingerprint(cfg.contrastive, storage)}
    return run_training(train_loop_per_worker, cfg, STAGE, inputs, network_configs(cfg), fail_at_step)
