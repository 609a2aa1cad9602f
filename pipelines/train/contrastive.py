"""Stage 1, ``train_contrastive``: the audio encoder E_a and the visual encoder E_v with MLP_cl, trained with
the CLIP-style loss L_cl (TH-PAD supplement §I.3; paper_spec §1.5). The audio window and the frame of the
same clip and time are a positive pair; the other pairs of the batch, and the audio features of past
batches held in the memory bank MB, are the negatives. Validation: audio→frame retrieval on val pairs.
Before L_cl, on a fresh start, E_v can warm up on the mouth's landmark motion (``warm_up_visual``), our
stand-in for the paper's pretrained E_v.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.data import DataLoader

from thpad.codec import from_dict, to_dict
from thpad.models.audio_encoder import AudioEncoder, AudioEncoderConfig
from thpad.models.losses import LogitScale, info_nce_loss
from thpad.models.memory_bank import MEMORY_BANK_PRESETS, MemoryBank
from thpad.models.talking_head import TALKING_HEAD_PRESETS
from thpad.models.visual_encoder import VisualEncoder, VisualEncoderConfig
from thpad.pipelines.train.config import ContrastiveConfig
from thpad.pipelines.train.harness import (
    capture_rng,
    crossed,
    ema_update,
    failing_rank,
    init_worker,
    kill_this_worker,
    learning_rate,
    pretrain,
    report_checkpoint,
    resume,
    run_training,
    set_learning_rate,
    shards_fingerprint,
)
from thpad.pipelines.train.landmark_motion import landmark_head, landmark_motion_loss
from thpad.storage.manifest import identity_indices, list_shards, manifest_uri, read_manifest
from thpad.storage.readers import FrameDataset, FrameSamplingConfig, iter_raw
from thpad.storage.shards import MEL, decode_frames, load_npy
from thpad.storage.tracking import NullRun, StageRun, resume_stage_run
from thpad.storage.uri import Storage
from thpad.storage.windows import mel_window

log = logging.getLogger(__name__)
STAGE = "train_contrastive"
MEL_BINS_PER_FRAME = 4  # 16 kHz, hop 160, 25 fps (paper_spec §2.1)


class ContrastiveNet(nn.Module):
    """E_a, E_v with MLP_cl, and the CLIP logit scale: what stage 1 trains (names match ``TalkingHead``)."""

    def __init__(self, audio: AudioEncoderConfig, visual: VisualEncoderConfig, init_temperature: float) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(audio)
        self.visual_encoder = VisualEncoder(visual)
        self.logit_scale = LogitScale(init_temperature)
        # MLP_ol and MLP_nl belong to stage 2; frozen here so DDP does not wait for their gradients.
        self.visual_encoder.mlp_ol.requires_grad_(False)
        self.visual_encoder.mlp_nl.requires_grad_(False)

    def forward(self, mel: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: mel (B, 1, n_mels, n_frames); image (B, 3, S, S) in [-1, 1].
        Returns: f_a (B, D), f_cl (B, D) and the scalar logit scale."""
        f_a = self.audio_encoder(mel)  # (B, D)
        f_cl = self.visual_encoder.mlp_cl(self.visual_encoder.encode(image))  # (B, D)
        return f_a, f_cl, self.logit_scale()


def net_config(cfg: ContrastiveConfig) -> dict[str, Any]:
    """The snapshot's JSON config: enough to rebuild the network with ``build_net``."""
    preset = TALKING_HEAD_PRESETS[cfg.model]
    return {"audio": to_dict(preset.audio), "visual": to_dict(preset.visual),
            "init_temperature": cfg.init_temperature}


def build_net(config: Mapping[str, Any]) -> ContrastiveNet:
    """A freshly initialised ``ContrastiveNet`` from a snapshot config (see ``net_config``)."""
    return ContrastiveNet(from_dict(AudioEncoderConfig, config["audio"]),
                          from_dict(VisualEncoderConfig, config["visual"]), float(config["init_temperature"]))


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


def endless_batches(dataset: FrameDataset, batch_size: int, num_workers: int, epoch: int,
                    skip: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Batches forever, epoch after epoch, as (epoch, batches taken in that epoch, batch).

    Ranks may hold different numbers of samples, so no rank may stop at its epoch end (DDP would hang);
    ``skip`` batches of the first epoch are drawn and dropped, which replays the data position exactly.
    """
    while True:
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=True)
        taken = 0
        for taken, batch in enumerate(loader, start=1):
            if taken > skip:
                yield epoch, taken, batch
        if taken == 0:
            raise ValueError(f"epoch {epoch} of rank shards {dataset.shard_uris} gave no batch of {batch_size}")
        epoch, skip = epoch + 1, 0


def warm_up_visual(net: ContrastiveNet, batches: Iterator[tuple[int, int, dict[str, Any]]], cfg: ContrastiveConfig,
                   device: torch.device, world_size: int, tracker: StageRun) -> None:
    """E_v's warm-up before L_cl (``landmark_motion.pretrain_samples``; our stand-in for the paper's pretrained
    E_v): the backbone and a linear head on f_v regress each frame's landmark motion within its clip (the
    mouth's by default), under Adam at ``pretrain_lr`` with gradients averaged over the ranks. From random
    weights, L_cl alone can idle at clip recognition for most of the stage before E_v finds the mouth (README,
    "Training"). The head is dropped afterwards. Logs ``warmup/lmk`` every 10 updates (rank 0's tracker)."""
    p, visual = cfg.landmark_motion, net.visual_encoder
    head = landmark_head(visual.cfg.feature_dim, p).to(device)

    def loss_of(batch: dict[str, Any]) -> torch.Tensor:
        image, target = batch["image"].to(device), batch["landmark_motion"].to(device)  # (b, 3, S, S), (b, D)
        return landmark_motion_loss(head, visual.encode(image), target, p)  # encode: (b, feature_dim)

    pretrain([*visual.backbone.parameters(), *head.parameters()], loss_of, batches,
             -(-p.pretrain_samples // cfg.schedule.batch_size), p.pretrain_lr, world_size, cfg.schedule.grad_clip,
             tracker, "warmup/lmk")


def load_val_pairs(shards: Sequence[str], storage: Storage, num_pairs: int, frames_per_clip: int,
                   sampling: FrameSamplingConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed validation batch: evenly spaced frames of the first clips, with their mel windows.

    Returns:
        images (N, 3, S, S) in [-1, 1], mels (N, 1, n_mels, n_frames) and clip (N,) int64 (the row's clip
        number), row i pairing with row i.
    """
    images, mels, clips = [], [], []
    for index, (_, members) in enumerate(iter_raw(shards, storage)):
        mel = load_npy(members[MEL])  # (n_mels, 4T)
        num_frames = mel.shape[1] // MEL_BINS_PER_FRAME
        half = sampling.frames_per_window // 2
        frames = np.unique(np.linspace(half, num_frames - 1 - half, frames_per_clip).round().astype(int))
        rgb = decode_frames(members, frames.tolist(), sampling.image_size)  # (F, S, S, 3)
        images.append(torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0)  # (F, 3, S, S)
        mels += [torch.from_numpy(mel_window(mel, int(t), sampling.frames_per_window)[0]) for t in frames]
        clips += [index] * len(frames)
        if len(mels) >= num_pairs:
            break
    if len(mels) < 5:
        raise ValueError(f"the val shards {list(shards)} hold fewer than 5 pairs")
    # (N, 3, S, S), (N, 1, M, W), (N,)
    return torch.cat(images)[:num_pairs], torch.stack(mels)[:num_pairs, None], torch.tensor(clips[:num_pairs])


@torch.no_grad()
def retrieval(net: ContrastiveNet, images: torch.Tensor, mels: torch.Tensor,
              clips: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """Audio→frame retrieval: cosine similarity of every audio window to every frame.

    ``top1``/``top5``: the true frame among all N frames. ``sync_top1``: among the frames of the same clip only
    (identity and voice give nothing away there: only what the audio says about the face at that moment).
    ``sync_pairwise``: how often the true frame beats one other frame of the same clip (chance 0.5), averaged
    over all such pairs: the two-alternative form of sync retrieval, with far less sampling noise than top-1.
    On the sample corpus an oracle that knows the true mouth opening scores about 0.31 top-1 among 8 frames
    and 0.73 pairwise (scripts/sync_ceiling.py): the corpus's speech shows on the face as one number.
    Returns:
        the (N, N) similarity matrix (row: audio, column: frame) and the accuracies with their chance levels.
    """
    was_training = net.training
    net.eval()
    f_a, f_cl, _ = net(mels, images)  # (N, D), (N, D)
    net.train(was_training)
    sim = nn.functional.normalize(f_a, dim=1) @ nn.functional.normalize(f_cl, dim=1).t()  # (N, N)
    return sim, retrieval_scores(sim, clips)


def retrieval_scores(sim: torch.Tensor, clips: torch.Tensor) -> dict[str, float]:
    """Accuracies of an (N, N) audio-to-frame similarity matrix whose diagonal holds the true pairs, with the
    clip number (N,) of each row; see ``retrieval``."""
    n, truth = sim.shape[0], torch.arange(sim.shape[0])[:, None]  # (N, 1)
    top5 = sim.topk(min(5, n), dim=1).indices  # (N, 5)
    hits = top5 == truth  # (N, 5)
    same_clip = clips[:, None] == clips[None, :]  # (N, N)
    sync_hit = sim.masked_fill(~same_clip, float("-inf")).argmax(1) == truth[:, 0]  # (N,)
    rivals = same_clip & ~torch.eye(n, dtype=torch.bool)  # (N, N) other frames of the row's clip
    true_sim = sim.diagonal()[:, None]  # (N, 1)
    wins = (true_sim > sim).float() + 0.5 * (true_sim == sim).float()  # (N, N) ties count half
    pairwise = float(wins[rivals].mean()) if bool(rivals.any()) else float("nan")
    return {"top1": float(hits[:, 0].float().mean()), "top5": float(hits.any(1).float().mean()),
            "sync_top1": float(sync_hit.float().mean()), "sync_pairwise": pairwise, "chance_top1": 1.0 / n,
            "chance_top5": min(5, n) / n, "chance_sync_top1": float((1.0 / same_clip.sum(1).float()).mean())}


def similarity_figure(sim: torch.Tensor, title: str) -> Figure:
    """An image of the (N, N) audio-to-frame similarity matrix (the diagonal holds the true pairs)."""
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    shown = ax.imshow(sim.cpu().numpy(), cmap="viridis")  # autoscaled: early differences are small
    ax.set(xlabel="frame", ylabel="audio window", title=title)
    fig.colorbar(shown, ax=ax, label="cosine similarity")
    return fig


def gather_rows(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """All ranks' (b, D) rows concatenated in rank order, (world_size * b, D) (no gradient)."""
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)  # (world_size * b, D)


ValBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (N, 3, S, S), mels (N, 1, M, W), clips (N,)


def validate(net: ContrastiveNet, ema: ContrastiveNet,
             val: ValBatch | None) -> tuple[dict[str, float], torch.Tensor | None]:
    """Retrieval metrics of the trained and the EMA network (``val/...``, ``val_ema/...``) and the EMA's
    similarity matrix; nothing on ranks without validation data."""
    if val is None:
        return {}, None
    device = next(net.parameters()).device
    images, mels, clips = (t.to(device) for t in val)
    _, raw = retrieval(net, images, mels, clips)
    sim, smooth = retrieval(ema, images, mels, clips)
    return {**{f"val/{k}": v for k, v in raw.items()}, **{f"val_ema/{k}": v for k, v in smooth.items()}}, sim


def training_state(net: nn.Module, ema: nn.Module, optimizer: torch.optim.Optimizer, bank: MemoryBank,
                   step: int, cur_nsamples: int) -> dict[str, Any]:
    """What rank 0 stores in each checkpoint (everything shared by all ranks)."""
    return {"model": net.state_dict(), "ema": ema.state_dict(), "optimizer": optimizer.state_dict(),
            "bank": bank.state_dict(), "step": step, "cur_nsamples": cur_nsamples}


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker of stage 1, in EDM's order. ``config``: see ``harness.run_training``."""
    import ray.train
    import ray.train.torch

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
        val = load_val_pairs(list_shards(cfg.shards, "val", storage), storage, cfg.data.val_pairs,
                             cfg.data.val_frames_per_clip, sampling)

    # Construct networks.
    log.info("Constructing networks (%s preset)...", cfg.model)
    net = build_net(net_config(cfg)).to(device)
    ema = copy.deepcopy(net).eval().requires_grad_(False)
    bank = MemoryBank(MEMORY_BANK_PRESETS[cfg.memory_bank]).to(device)

    # Set up the optimizer.
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=s.lr)

    # Resume training from the last checkpoint, if any.
    progress = resume(rank, s.seed, {"model": net, "ema": ema, "optimizer": optimizer, "bank": bank}, "batch")
    step, cur_nsamples, epoch, position = progress.step, progress.cur_nsamples, progress.epoch, progress.position
    fresh_start = not progress.resumed
    batches = endless_batches(dataset, batch_gpu, cfg.data.loader_workers, epoch, position)
    tracker = resume_stage_run(cfg.tracking, config["run_id"]) if lead else NullRun()
    if fresh_start and cfg.landmark_motion.pretrain_samples > 0:
        log.info("Warming E_v up on landmark motion for %d samples...", cfg.landmark_motion.pretrain_samples)
        warm_up_visual(net, batches, cfg, device, world_size, tracker)
        ema_update(ema, net, 0.0)  # the EMA starts from the warmed-up E_v
    model = ray.train.torch.prepare_model(net)  # DDP when world_size > 1
    if not fresh_start:
        tracker.log_metrics({"progress/resumed_from_nsamples": cur_nsamples}, step)

    # Train.
    log.info("Training for %d samples from %d...", s.total_samples, cur_nsamples)
    tick_nsamples, tick_time = cur_nsamples, time.perf_counter()
    while cur_nsamples < s.total_samples:
        # Accumulate gradients.
        optimizer.zero_grad(set_to_none=True)
        losses = []
        for round_idx in range(s.accum_rounds):
            epoch, position, batch = next(batches)
            mel = batch["mel"].to(device)[:, None]  # (b, 1, n_mels, n_frames)
            image = batch["image"].to(device)  # (b, 3, S, S)
            sync_now = round_idx == s.accum_rounds - 1 or world_size == 1
            with nullcontext() if sync_now else model.no_sync():
                with autocast:
                    f_a, f_cl, scale = model(mel, image)  # (b, D), (b, D), ()
                loss = info_nce_loss(f_cl.float(), f_a.float(), scale, bank.negatives())
                (loss / s.accum_rounds).backward()
            bank.push(gather_rows(f_a.detach().float(), world_size))  # all ranks' audio features, rank order
            losses.append(loss.item())

        # Update weights.
        lr = learning_rate(cur_nsamples, s)
        set_learning_rate(optimizer, lr)
        grad_norm = nn.utils.clip_grad_norm_(params, s.grad_clip if s.grad_clip > 0 else float("inf"))
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
            tracker.log_metrics({"train/loss": float(np.mean(losses)), "train/lr": lr,
                                 "train/grad_norm": float(grad_norm), "train/logit_scale": float(scale.detach()),
                                 "train/samples_per_s": speed, "progress/nsamples": cur_nsamples}, step)
            tick_nsamples, tick_time = cur_nsamples, now

        # Maintenance: save the training state (the last one is saved after the loop, with the snapshot).
        if crossed(prev_nsamples, cur_nsamples, s.checkpoint_every_samples) and not done:
            metrics, _ = validate(net, ema, val)
            tracker.log_metrics(metrics, step)
            report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                              {"rng": capture_rng(), "epoch": epoch, "batch": position},
                              training_state(net, ema, optimizer, bank, step, cur_nsamples) if lead else None)

    # Finish: validate, draw the retrieval matrix, save the final state with the snapshot.
    metrics, sim = validate(net, ema, val)
    tracker.log_metrics(metrics, step)
    if sim is not None:
        tracker.log_figure(similarity_figure(sim, f"audio-to-frame similarity (EMA, step {step})"),
                           "retrieval_matrix.png")
    report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": epoch, "batch": position},
                      training_state(net, ema, optimizer, bank, step, cur_nsamples) if lead else None,
                      (net_config(cfg), ema) if lead else None)
    log.info("Done after %d steps (%d samples).", step, cur_nsamples)


def train_contrastive(cfg: ContrastiveConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 1 on Ray Train and write its snapshot to ``cfg.out``; returns Ray's ``Result``."""
    inputs = {"shards": shards_fingerprint(cfg.shards, Storage(cfg.s3))}
    networks = {"model": net_config(cfg), "memory_bank": to_dict(MEMORY_BANK_PRESETS[cfg.memory_bank])}
    return run_training(train_loop_per_worker, cfg, STAGE, inputs, networks, fail_at_step)
