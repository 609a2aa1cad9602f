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
  and affine augmentation (pipelines/train/augment.py), G rebuilds the clean frame, and the identity frames
  come from the same clip at least ``data.min_identity_distance`` frames away. L_cl reaches MLP_cl only
  (f_v detached): stage 1 made the backbone audio-aligned and nearly blind to pose, and L_cl would keep
  pulling it there while reconstruction is to teach it pose.
- Order and parallelism. Each update is a D step then a G step on the same fakes (with several accumulation
  rounds the G step recomputes them). Gradients are averaged by hand per step, as StyleGAN3 does, instead of
  DDP, whose hooks fit neither the G step's backward through a frozen D nor phase two's frozen encoders.
- Phase two ("after the 40k-th step, we freeze other modules and train only G and D"): from
  ``phase_two.start_samples`` the encoders are frozen and in eval mode (BatchNorm statistics fixed), and G and
  D follow the ``phase_two`` schedule. Frozen modules always run in eval mode.
- Validation (rank 0, EMA networks, no generator noise): reconstruction L1 and PSNR of val driving frames
  from same-clip identity frames; how much G relies on f_nl and whether f_nl has collapsed (see
  ``validate``); and a linear probe of the corpus's true motion from f_nl and from f_l
  (pipelines/train/probe.py), skipped on data without truth. The probe centres features and truth per clip:
  it scores how a feature follows the motion within a clip, which is what "tracking" pose means, and not
  per-clip offsets (each val clip of the sample corpus is another identity, whose offsets a linear probe
  fitted on other identities cannot place; even raw pixels score near 0 on uncentred yaw).
"""

from __future__ import annotations

import copy
import dataclasses
import io
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from thpad.codec import from_dict, to_dict
from thpad.models.feature_losses import GazeLoss, GazeLossConfig, PerceptualLoss, PerceptualLossConfig
from thpad.models.gaze import GAZE_PRESETS
from thpad.models.generator.discriminator import DISCRIMINATOR_PRESETS, MultiscaleDiscriminator
from thpad.models.losses import (
    LogitScale,
    adversarial_d_loss,
    adversarial_g_loss,
    feature_matching_loss,
    info_nce_loss,
    orthogonality_loss,
    weighted_total,
)
from thpad.models.memory_bank import MEMORY_BANK_PRESETS, MemoryBank
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead, TalkingHeadOutput, talking_head_snapshot_config
from thpad.models.vgg import VGG_PRESETS
from thpad.pipelines.train.augment import augment_frames
from thpad.pipelines.train.contrastive import (
    MEL_BINS_PER_FRAME,
    ContrastiveNet,
    build_net,
    endless_batches,
    gather_rows,
)
from thpad.pipelines.train.disentangle_config import DisentangleConfig
from thpad.pipelines.train.harness import (
    Meter,
    capture_rng,
    crossed,
    ema_update,
    failing_rank,
    file_fingerprint,
    init_worker,
    kill_this_worker,
    learning_rate,
    pretrain,
    report_checkpoint,
    resume,
    run_training,
    shards_fingerprint,
    step_with_averaged_gradients,
)
from thpad.pipelines.train.landmark_motion import landmark_head, landmark_motion_loss
from thpad.pipelines.train.probe import partial_correlations, pearson, probe_groups, probe_predictions
from thpad.storage.manifest import identity_indices, list_shards, manifest_uri, read_manifest
from thpad.storage.readers import FrameDataset, FrameSamplingConfig, iter_raw, to_tensor
from thpad.storage.shards import MEL, decode_frames, decode_meta, load_npy
from thpad.storage.tracking import NullRun, StageRun, resume_stage_run
from thpad.storage.uri import Storage, is_s3
from thpad.storage.windows import mel_window

log = logging.getLogger(__name__)
STAGE = "train_disentangle"
PHASE_ONE, PHASE_TWO = 1, 2
VAL_CHUNK = 64  # frames per forward pass in validation


class StageInputError(ValueError):
    """An input of the stage (stage-1 snapshot, weights file) is missing or does not fit the config."""


# Inputs: the stage-1 snapshot and optional weight files.

def read_contrastive(uri: str, storage: Storage, model: str) -> ContrastiveNet:
    """Stage 1's network from its snapshot, after checking that its E_a and E_v are ``model``'s.

    Raises:
        StageInputError: the file is missing, is not a stage-1 snapshot, or was trained for another preset.
    """
    fix = "run `thpad train-contrastive` (or `dvc repro train_contrastive`) first, or fix train_disentangle.contrastive"
    if not storage.exists(uri):
        raise StageInputError(f"no stage-1 snapshot at {uri}: {fix}")
    try:
        payload = torch.load(io.BytesIO(storage.read_bytes(uri)), map_location="cpu", weights_only=True)
        config, state = payload["config"], payload["state_dict"]
        preset = TALKING_HEAD_PRESETS[model]
        same = config["audio"] == to_dict(preset.audio) and config["visual"] == to_dict(preset.visual)
    except (KeyError, TypeError, RuntimeError, EOFError) as err:
        raise StageInputError(f"{uri} is not a train_contrastive snapshot ({err!r}): {fix}") from err
    if not same:
        raise StageInputError(f"{uri} holds E_a/E_v of another model preset than train_disentangle.model={model!r}: "
                              f"retrain train_contrastive with model {model!r}, or set train_disentangle.model to its "
                              "preset")
    net = build_net(config)
    net.load_state_dict(state, strict=True)
    return net


def weight_files(cfg: DisentangleConfig) -> dict[str, str]:
    """The optional pretrained weight files the config names (field -> path)."""
    files = {"identity_weights": cfg.identity_weights, "feature_losses.vgg_weights": cfg.feature_losses.vgg_weights,
             "feature_losses.gaze_weights": cfg.feature_losses.gaze_weights}
    return {name: path for name, path in files.items() if path}


def with_absolute_weight_files(cfg: DisentangleConfig) -> DisentangleConfig:
    """``cfg`` with its local weight files made absolute (Ray workers run elsewhere), after checking they exist."""
    for name, path in weight_files(cfg).items():
        if is_s3(path) or not Path(path).is_file():
            raise StageInputError(f"train_disentangle.{name}: no weights file at {path} (give a local torchvision "
                                  "state-dict file, or null)")
    def resolve(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else path

    losses = dataclasses.replace(cfg.feature_losses, vgg_weights=resolve(cfg.feature_losses.vgg_weights),
                                 gaze_weights=resolve(cfg.feature_losses.gaze_weights))
    return dataclasses.replace(cfg, identity_weights=resolve(cfg.identity_weights), feature_losses=losses)


# Networks, phases and learning rates.

def build_networks(cfg: DisentangleConfig,
                   stage_one: ContrastiveNet) -> tuple[TalkingHead, LogitScale, MultiscaleDiscriminator]:
    """The talking head (E_a, E_v from stage 1; E_id from ``identity_weights`` or random), L_cl's logit scale
    (stage 1's) and D, freshly initialised from the current torch seed."""
    head = TalkingHead(TALKING_HEAD_PRESETS[cfg.model])
    head.identity_encoder.load_pretrained(cfg.identity_weights)
    head.audio_encoder.load_state_dict(stage_one.audio_encoder.state_dict())
    head.visual_encoder.load_state_dict(stage_one.visual_encoder.state_dict())
    return head, copy.deepcopy(stage_one.logit_scale), MultiscaleDiscriminator(DISCRIMINATOR_PRESETS[cfg.discriminator])


def phase_of(cur_nsamples: int, cfg: DisentangleConfig) -> int:
    """1 before ``phase_two.start_samples``, 2 from then on."""
    return PHASE_TWO if cur_nsamples >= cfg.phase_two.start_samples else PHASE_ONE


def encoder_parts(head: TalkingHead, cfg: DisentangleConfig, landmark: nn.Module | None) -> list[nn.Module]:
    """The parts of E_v that train in phase one (MLP_ol, MLP_nl, the backbone when it trains) and L_lmk's head
    ``landmark`` when there is one: what reaches f_nl."""
    visual = head.visual_encoder
    parts: list[nn.Module] = [visual.mlp_ol, visual.mlp_nl, *([landmark] if landmark is not None else [])]
    return parts + ([visual.backbone] if cfg.train_visual_backbone else [])


def trainable_parts(head: TalkingHead, logit_scale: LogitScale, cfg: DisentangleConfig, phase: int,
                    landmark: nn.Module | None = None) -> dict[str, list[nn.Module]]:
    """The generator-side modules that train in ``phase``, by learning-rate group (D always trains); L_lmk's
    head ``landmark``, when there is one, trains with E_v."""
    if phase == PHASE_TWO:
        return {"identity": [], "visual": [], "audio": [], "generator": [head.generator]}
    visual = head.visual_encoder
    visual_parts = encoder_parts(head, cfg, landmark)
    if cfg.loss.weights.cl > 0:
        visual_parts += [visual.mlp_cl, logit_scale]
    audio_parts = [head.mlp_a2l, *([head.audio_encoder] if cfg.train_audio_encoder else [])]
    return {"identity": [head.identity_encoder], "visual": visual_parts, "audio": audio_parts,
            "generator": [head.generator]}


def apply_phase(head: TalkingHead, logit_scale: LogitScale, cfg: DisentangleConfig, phase: int,
                landmark: nn.Module | None = None) -> None:
    """Freeze (no gradients, eval mode) every generator-side module except those training in ``phase``."""
    head.eval().requires_grad_(False)
    logit_scale.requires_grad_(False)
    if landmark is not None:
        landmark.eval().requires_grad_(False)
    for modules in trainable_parts(head, logit_scale, cfg, phase, landmark).values():
        for module in modules:
            module.train().requires_grad_(True)


def group_learning_rates(cur_nsamples: int, cfg: DisentangleConfig) -> dict[str, float]:
    """Each group's learning rate: the phase's schedule times the group's scale (0 for frozen groups)."""
    s, two, scale = cfg.schedule, cfg.phase_two, cfg.lr_scale
    if phase_of(cur_nsamples, cfg) == PHASE_ONE:
        base, encoders = learning_rate(cur_nsamples, s), 1.0
    else:
        schedule = dataclasses.replace(s, lr=two.lr, warmup_samples=two.warmup_samples,
                                       decay_samples=two.decay_samples, min_lr_ratio=two.min_lr_ratio)
        base, encoders = learning_rate(cur_nsamples - two.start_samples, schedule), 0.0
    return {"identity": base * scale.identity * encoders, "visual": base * scale.visual * encoders,
            "audio": base * scale.audio * encoders, "generator": base * scale.generator,
            "discriminator": base * scale.discriminator}


def make_optimizers(head: TalkingHead, logit_scale: LogitScale, disc: nn.Module, cfg: DisentangleConfig,
                    landmark: nn.Module | None = None) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the generator side (groups "identity", "visual", "audio" and "generator": phase one's trainable
    parts, so the state keeps its shape across phases) and Adam for D ("discriminator")."""
    parts = trainable_parts(head, logit_scale, cfg, PHASE_ONE, landmark)
    groups = [{"name": name, "params": [p for m in modules for p in m.parameters()]} for name, modules in parts.items()]
    return (torch.optim.Adam(groups, lr=0.0, betas=cfg.betas),
            torch.optim.Adam([{"name": "discriminator", "params": list(disc.parameters())}], lr=0.0, betas=cfg.betas))


def set_group_learning_rates(optimizers: Sequence[torch.optim.Optimizer], lrs: Mapping[str, float]) -> None:
    """Set each named parameter group's rate."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lrs[group["name"]]


class LossNets(NamedTuple):
    """The pretrained loss networks (each reports whether it is available)."""

    vgg: PerceptualLoss
    gaze: GazeLoss


def build_loss_nets(cfg: DisentangleConfig, device: torch.device) -> LossNets:
    """L_VGG's and L_gaze's networks, frozen; unavailable (no weights, no permission for random ones) = off."""
    f = cfg.feature_losses
    vgg = PerceptualLoss(PerceptualLossConfig(vgg=VGG_PRESETS[f.vgg], weights=f.vgg_weights,
                                              allow_random_features=f.allow_random_features,
                                              layer_weights=f.vgg_layer_weights))
    gaze = GazeLoss(GazeLossConfig(encoder=GAZE_PRESETS[f.gaze], weights=f.gaze_weights,
                                   allow_random_features=f.allow_random_features, distance=f.gaze_distance))
    return LossNets(vgg.to(device).eval().requires_grad_(False), gaze.to(device).eval().requires_grad_(False))


# Data.

def frame_sampling(cfg: DisentangleConfig) -> FrameSamplingConfig:
    """The reader's settings, derived from the model preset (image size, window width) and the data params;
    the landmark-motion targets only when L_lmk is on."""
    preset, motion = TALKING_HEAD_PRESETS[cfg.model], cfg.loss.landmark_motion
    return FrameSamplingConfig(
        num_identity_frames=cfg.data.num_identity_frames, min_identity_distance=cfg.data.min_identity_distance,
        image_size=preset.visual.image_size, frames_per_window=preset.audio.n_frames // MEL_BINS_PER_FRAME,
        samples_per_clip=cfg.data.samples_per_clip, shuffle_buffer=cfg.data.shuffle_buffer, seed=cfg.schedule.seed,
        motion_points=motion.points if cfg.loss.weights.lmk > 0 else None, motion_min_std=motion.min_std,
        closure=motion.closure, closure_min_std=motion.closure_min_std)


def build_landmark_head(cfg: DisentangleConfig) -> nn.Linear | None:
    """L_lmk's head on f_nl, or None when L_lmk is off."""
    if cfg.loss.weights.lmk <= 0:
        return None
    return landmark_head(TALKING_HEAD_PRESETS[cfg.model].nl_dim, cfg.loss.landmark_motion)


class Round(NamedTuple):
    """One accumulation round's inputs, on the device."""

    real: torch.Tensor  # (b, 3, S, S) driving frames, G's target
    driving: torch.Tensor  # (b, 3, S, S) the same frames augmented, E_v's input
    identity: torch.Tensor  # (b, K, 3, S, S)
    mel: torch.Tensor  # (b, 1, n_mels, n_frames)
    landmark_motion: torch.Tensor | None  # (b, D) L_lmk's targets, None when L_lmk is off


def make_round(batch: Mapping[str, Any], cfg: DisentangleConfig, device: torch.device) -> Round:
    """Move a reader batch to the device, augmenting the driving frames (on the CPU, torch's RNG)."""
    real = batch["image"]  # (b, 3, S, S)
    motion = batch.get("landmark_motion")  # (b, D) or None
    return Round(real.to(device), augment_frames(real, cfg.augment).to(device),
                 batch["identity_images"].to(device), batch["mel"][:, None].to(device),
                 None if motion is None else motion.to(device))


class ValSet(NamedTuple):
    """The fixed validation frames (rank 0)."""

    images: torch.Tensor  # (N, 3, S, S) driving frames
    mels: torch.Tensor  # (N, 1, n_mels, n_frames)
    groups: np.ndarray  # (N,) probe fold unit (clip, see probe_groups)
    truth: dict[str, np.ndarray] | None  # target -> (N,), None without truth
    recon_rows: np.ndarray  # (R,) rows of ``images`` with identity frames
    identity: torch.Tensor  # (R, K, 3, S, S)


def clip_truth(meta: Mapping[str, Any], key: str, frames: np.ndarray, targets: Sequence[str]) -> dict | None:
    """The corpus's true motion of ``targets`` at ``frames`` (None when the clip has no truth)."""
    motion = (meta.get("truth") or {}).get("motion")
    if motion is None:
        return None
    missing = [t for t in targets if t not in motion]
    if missing:
        raise StageInputError(f"val clip {key!r}: truth has no {missing} (known: {sorted(motion)}); "
                              "fix train_disentangle.val.probe_targets")
    return {t: np.asarray(motion[t], np.float64)[frames] for t in targets}


def identity_partners(num_frames: int, frame: int, count: int, min_distance: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``count`` frames at least ``min_distance`` from ``frame`` (distinct when enough exist), as in training."""
    frames = np.arange(num_frames)
    far = frames[np.abs(frames - frame) >= max(min_distance, 1)]
    if far.size == 0:
        raise StageInputError(f"a val clip of {num_frames} frames has no frame {min_distance} frames from {frame}")
    return rng.choice(far, count, replace=far.size < count)  # (count,)


def load_val_set(shards: Sequence[str], storage: Storage, cfg: DisentangleConfig,
                 sampling: FrameSamplingConfig) -> ValSet:
    """Evenly spaced frames of the first ``val.clips`` val clips, with mel windows, truth and, for
    ``val.recon_frames_per_clip`` of them per clip, identity frames drawn as in training (seeded)."""
    v, half, k = cfg.val, sampling.frames_per_window // 2, sampling.num_identity_frames
    rng = np.random.default_rng([cfg.schedule.seed, 2])
    images, mels, clips, frame_ids, truths, recon_rows, identity = [], [], [], [], [], [], []
    for index, (key, members) in enumerate(iter_raw(shards, storage)):
        if index >= v.clips:
            break
        meta, mel = decode_meta(key, members), load_npy(members[MEL])  # mel: (n_mels, 4T)
        num_frames = int(meta["num_frames"])
        frames = np.unique(np.linspace(half, num_frames - 1 - half, v.frames_per_clip).round().astype(int))
        picks = np.unique(np.linspace(0, len(frames) - 1, v.recon_frames_per_clip).round().astype(int))
        partners = [identity_partners(num_frames, int(t), k, sampling.min_identity_distance, rng)
                    for t in frames[picks]]  # R x (K,)
        decoded = to_tensor(decode_frames(members, [*frames.tolist(), *np.concatenate(partners).tolist()],
                                          sampling.image_size))  # (F + R*K, 3, S, S)
        recon_rows.append(picks + sum(len(x) for x in images))
        images.append(decoded[:len(frames)])
        identity.append(decoded[len(frames):].unflatten(0, (len(picks), k)))  # (R, K, 3, S, S)
        bins = mel.shape[1] // num_frames
        mels += [torch.from_numpy(mel_window(mel, int(t), sampling.frames_per_window, bins)[0]) for t in frames]
        clips.append(np.full(len(frames), index))
        frame_ids.append(frames)
        truths.append(clip_truth(meta, key, frames, v.probe_targets))
    if not images:
        raise StageInputError(f"the val shards {list(shards)} hold no clip")
    truth = None
    if all(t is not None for t in truths):
        truth = {name: np.concatenate([t[name] for t in truths]) for name in v.probe_targets}
    groups = probe_groups(np.concatenate(clips), np.concatenate(frame_ids), v.probe_folds)
    return ValSet(torch.cat(images), torch.stack(mels)[:, None], groups, truth, np.concatenate(recon_rows),
                  torch.cat(identity))


# Losses.

def discriminator_loss(disc: nn.Module, r: Round, fake: torch.Tensor, cfg: DisentangleConfig) -> torch.Tensor:
    """Eq. I, D's side: real frames against (detached) fakes, averaged over D's scales."""
    real_logits = [s.logits for s in disc(r.real)]
    fake_logits = [s.logits for s in disc(fake.detach())]
    return adversarial_d_loss(real_logits, fake_logits, cfg.loss.gan_kind)


def generator_terms(out: TalkingHeadOutput, r: Round, disc: nn.Module, loss_nets: LossNets, mlp_cl: nn.Module,
                    logit_scale: LogitScale, bank: MemoryBank, cfg: DisentangleConfig, phase: int,
                    landmark: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The terms of Eq. IV (keys of ``LossWeights``); L_ol, L_cl and L_lmk (ours, with a ``landmark`` head)
    only in phase one (nothing they reach trains in phase two), L_VGG and L_gaze only when their networks are
    available."""
    weights = cfg.loss.weights
    fake_scales = disc(out.image)
    with torch.no_grad():
        real_scales = disc(r.real)
    terms = {"gan": adversarial_g_loss([s.logits for s in fake_scales], cfg.loss.gan_kind),
             "feat": feature_matching_loss([s.features for s in real_scales], [s.features for s in fake_scales])}
    for name, net in (("vgg", loss_nets.vgg), ("gaze", loss_nets.gaze)):
        if net.available and getattr(weights, name) > 0:
            terms[name] = net(r.real, out.image)
    if phase == PHASE_ONE:
        terms["ol"] = orthogonality_loss(out.f_ol, out.f_a)
        if weights.cl > 0:  # MLP_cl on a detached f_v: L_cl must not pull E_v's backbone back to stage 1's features
            f_cl = mlp_cl(out.f_v.detach())  # (b, D)
            terms["cl"] = info_nce_loss(f_cl, out.f_a, logit_scale(), bank.negatives())
        if landmark is not None and r.landmark_motion is not None:
            terms["lmk"] = landmark_motion_loss(landmark, out.f_nl, r.landmark_motion,
                                                 cfg.loss.landmark_motion)
    return terms


def pretrain_visual(head: TalkingHead, landmark: nn.Module, batches: Iterator[tuple[int, int, dict[str, Any]]],
                    cfg: DisentangleConfig, device: torch.device, world_size: int, tracker: StageRun) -> None:
    """E_v's pretraining on L_lmk alone, before the GAN (``loss.landmark_motion.pretrain_samples``): E_v's
    phase-one parts and L_lmk's head under Adam (torch's default betas) at ``pretrain_lr``, gradients averaged
    over the ranks, on the driving frames augmented as in the GAN phase or, without ``augment.in_pretraining``,
    as they are. Draws its batches from ``batches``, so the data position the checkpoints record includes
    them. Logs ``pretrain/lmk`` every 10 updates (rank 0's tracker)."""
    p, visual, parts = cfg.loss.landmark_motion, head.visual_encoder, encoder_parts(head, cfg, landmark)
    for module in parts:
        module.train().requires_grad_(True)

    def loss_of(batch: dict[str, Any]) -> torch.Tensor:
        if cfg.augment.in_pretraining:
            r = make_round(batch, cfg, device)
            frames, target = r.driving, r.landmark_motion  # (b, 3, S, S), (b, D)
        else:
            frames, target = batch["image"].to(device), batch["landmark_motion"].to(device)  # (b, 3, S, S), (b, D)
        return landmark_motion_loss(landmark, visual(frames).f_nl, target, p)

    pretrain([q for module in parts for q in module.parameters()], loss_of, batches,
             -(-p.pretrain_samples // cfg.schedule.batch_size), p.pretrain_lr, world_size, cfg.schedule.grad_clip,
             tracker, "pretrain/lmk")


# Validation.

@torch.no_grad()
def reconstruct(ema: TalkingHead, identity: torch.Tensor, real: torch.Tensor,
                mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The EMA generator's reconstructions (no noise) of one chunk, with its true f_nl and with the f_nl of the
    next frame of the chunk (rolled by one): how much G relies on f_nl.

    Args:
        identity: (R, K, 3, S, S); real: (R, 3, S, S); mels: (R, 1, M, W), all on the networks' device.
    Returns:
        two (R, 3, S, S) images.
    """
    f_id, id_map = ema.encode_identity(identity)  # (R, id_dim), (R, C, 7, 7)
    f_nl, (_, f_l) = ema.visual_encoder(real).f_nl, ema.encode_audio(mels)  # (R, 42), (R, lip)
    own = ema.synthesize(f_id, id_map, f_nl, f_l, noise_mode="none")
    swapped = ema.synthesize(f_id, id_map, f_nl.roll(1, dims=0), f_l, noise_mode="none")
    return own, swapped


@torch.no_grad()
def validate(ema: TalkingHead, val: ValSet | None,
             cfg: DisentangleConfig) -> tuple[dict[str, float], torch.Tensor | None]:
    """Validation metrics of the EMA networks (``val/...``) and the grid's rows (identity frame, driving frame,
    reconstruction) as an (R', 3, 3, S, S) tensor; nothing without val data.

    Metrics: reconstruction L1 and PSNR; ``nl_reliance``, the L1 increase when each frame gets another frame's
    f_nl (about 0 while G ignores the non-lip code); ``nl_spread``, f_nl's mean per-dimension standard deviation
    over the val frames (near 0 when the code has collapsed to a constant); the motion probe.
    """
    if val is None:
        return {}, None
    device = next(ema.parameters()).device
    real, mels = val.images[val.recon_rows], val.mels[val.recon_rows]  # (R, 3, S, S), (R, 1, M, W)
    pairs = [reconstruct(ema, val.identity[rows].to(device), real[rows].to(device), mels[rows].to(device))
             for rows in torch.arange(len(real)).split(VAL_CHUNK)]
    recon, swapped = (torch.cat([pair[i].cpu() for pair in pairs]) for i in (0, 1))  # (R, 3, S, S) each
    mse = (recon - real).pow(2).mean(dim=(1, 2, 3))  # (R,)
    l1 = float((recon - real).abs().mean())
    f_nl = torch.cat([ema.visual_encoder(x.to(device)).f_nl.cpu() for x in val.images.split(VAL_CHUNK)])  # (N, 42)
    metrics = {"val/recon_l1": l1, "val/psnr": float((10 * torch.log10(4.0 / mse.clamp_min(1e-10))).mean()),
               "val/nl_reliance": float((swapped - real).abs().mean()) - l1,
               "val/nl_spread": float(f_nl.std(dim=0).mean())}  # PSNR: peak-to-peak 2
    if val.truth is not None:
        f_l = torch.cat([ema.encode_audio(m.to(device))[1].cpu() for m in val.mels.split(VAL_CHUNK)])  # (N, lip)
        for name, feats in (("nl", f_nl), ("lip", f_l)):
            pred, truth = probe_predictions(feats.double().numpy(), val.truth, val.groups, cfg.val.probe_folds,
                                            cfg.val.probe_ridge, within_groups=True)  # (N, T) each
            targets = list(val.truth)
            metrics |= {f"val/probe_{name}/{t}": pearson(pred[:, i], truth[:, i]) for i, t in enumerate(targets)}
            metrics |= {f"val/partial_{name}/{t}": r for t, r in partial_correlations(pred, truth, targets).items()}
    rows = np.unique(np.linspace(0, len(real) - 1, min(cfg.val.grid_rows, len(real))).round().astype(int))
    grid = torch.stack([val.identity[rows, 0], real[rows], recon[rows]], dim=1)  # (R', 3, 3, S, S)
    return metrics, grid


def grid_figure(grid: torch.Tensor, title: str) -> Figure:
    """An image of (rows, columns, 3, S, S) frames in [-1, 1]: identity | driving | reconstruction per row."""
    rows, cols = grid.shape[:2]
    tiled = grid.permute(0, 3, 1, 4, 2).flatten(0, 1).flatten(1, 2)  # (rows*S, cols*S, 3)
    fig = Figure(figsize=(1.2 * cols + 0.6, 1.2 * rows + 0.6), dpi=100, layout="tight")
    ax = fig.add_subplot()
    ax.imshow(((tiled.clamp(-1, 1) + 1) / 2).numpy())
    size = grid.shape[-1]
    ax.set_xticks([size * (i + 0.5) for i in range(cols)], ["identity", "driving", "reconstruction"][:cols])
    ax.set_yticks([])
    ax.set_title(title)
    return fig


def training_state(head: nn.Module, ema: nn.Module, disc: nn.Module, logit_scale: nn.Module,
                   optimizers: Sequence[torch.optim.Optimizer], bank: MemoryBank, step: int,
                   cur_nsamples: int, landmark: nn.Module | None = None) -> dict[str, Any]:
    """What rank 0 stores in each checkpoint (everything shared by all ranks)."""
    extra = {} if landmark is None else {"landmark_head": landmark.state_dict()}
    return {"model": head.state_dict(), "ema": ema.state_dict(), "discriminator": disc.state_dict(),
            "logit_scale": logit_scale.state_dict(), "opt_g": optimizers[0].state_dict(),
            "opt_d": optimizers[1].state_dict(), "bank": bank.state_dict(), "step": step,
            "cur_nsamples": cur_nsamples, **extra}


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
    loss_nets = build_loss_nets(cfg, device)
    announce_feature_losses(loss_nets, tracker, lead)

    # Set up the optimizers.
    optimizers = make_optimizers(head, logit_scale, disc, cfg, landmark)

    # Resume training from the last checkpoint, if any.
    stateful = {"model": head, "ema": ema, "discriminator": disc, "logit_scale": logit_scale,
                "opt_g": optimizers[0], "opt_d": optimizers[1], "bank": bank}
    progress = resume(rank, s.seed, stateful | ({} if landmark is None else {"landmark_head": landmark}), "batch")
    step, cur_nsamples, epoch, position = progress.step, progress.cur_nsamples, progress.epoch, progress.position
    fresh_start = not progress.resumed
    batches = endless_batches(dataset, batch_gpu, cfg.data.loader_workers, epoch, position)
    if fresh_start and landmark is not None and cfg.loss.landmark_motion.pretrain_samples > 0:
        log.info("Pretraining E_v on L_lmk for %d samples...", cfg.loss.landmark_motion.pretrain_samples)
        pretrain_visual(head, landmark, batches, cfg, device, world_size, tracker)
        ema_update(ema, head, 0.0)  # the EMA starts from the pretrained encoders
    if fresh_start:
        tracker.log_metrics(validate(ema, val, cfg)[0], 0)  # the starting point of the validation curves
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
            tracker.log_metrics({**meter.means(), **{f"train/lr_{name}": lr for name, lr in lrs.items()},
                                 "train/samples_per_s": speed, "progress/nsamples": cur_nsamples,
                                 "progress/phase": phase}, step)
            tick_nsamples, tick_time = cur_nsamples, now

        # Maintenance: save the training state (the last one is saved after the loop, with the snapshot).
        if crossed(prev_nsamples, cur_nsamples, s.checkpoint_every_samples) and not done:
            metrics, _ = validate(ema, val, cfg)
            tracker.log_metrics(metrics, step)
            state = training_state(head, ema, disc, logit_scale, optimizers, bank, step, cur_nsamples, landmark)
            report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                              {"rng": capture_rng(), "epoch": epoch, "batch": position}, state if lead else None)
            tick_time = time.perf_counter()  # validation and checkpointing are not training speed

    # Finish: validate, draw the reconstruction grid, save the final state with the snapshot.
    metrics, grid = validate(ema, val, cfg)
    tracker.log_metrics(metrics, step)
    if grid is not None:
        tracker.log_figure(grid_figure(grid, f"val reconstructions (EMA, step {step})"), "recon_grid.png")
    report_checkpoint({**metrics, "step": step, "cur_nsamples": cur_nsamples}, rank,
                      {"rng": capture_rng(), "epoch": epoch, "batch": position},
                      training_state(head, ema, disc, logit_scale, optimizers, bank, step, cur_nsamples, landmark)
                      if lead else None,
                      (talking_head_snapshot_config(TALKING_HEAD_PRESETS[cfg.model]), ema) if lead else None)
    log.info("Done after %d steps (%d samples).", step, cur_nsamples)


def check_inputs(cfg: DisentangleConfig) -> DisentangleConfig:
    """Check the stage's inputs before Ray starts: the stage-1 snapshot (and its preset), the preprocessed data
    and the optional weight files. Returns ``cfg`` with the weight files made absolute.

    Raises:
        StageInputError: naming the missing or mismatched input and the fix.
    """
    storage = Storage(cfg.s3)
    read_contrastive(cfg.contrastive, storage, cfg.model)
    if not storage.exists(manifest_uri(cfg.shards)):
        raise StageInputError(f"no preprocessed data at {cfg.shards} (no manifest.parquet): run `thpad preprocess` "
                              "(or `dvc repro preprocess`) first, or fix train_disentangle.shards")
    return with_absolute_weight_files(cfg)


def train_disentangle(cfg: DisentangleConfig, fail_at_step: int | None = None) -> Any:
    """Run stage 2 on Ray Train and write its snapshot (the EMA talking head) to ``cfg.out``; returns Ray's
    ``Result``. Inputs are checked first (``check_inputs``), so a bad one fails before Ray starts."""
    cfg = check_inputs(cfg)
    storage = Storage(cfg.s3)
    inputs = {"shards": shards_fingerprint(cfg.shards, storage),
              "contrastive": file_fingerprint(cfg.contrastive, storage)}
    return run_training(train_loop_per_worker, cfg, STAGE, inputs, network_configs(cfg), fail_at_step)


def network_configs(cfg: DisentangleConfig) -> dict[str, Any]:
    """The resolved config of every network the stage's presets name (part of the run key)."""
    f = cfg.feature_losses
    return {"model": talking_head_snapshot_config(TALKING_HEAD_PRESETS[cfg.model]),
            "discriminator": to_dict(DISCRIMINATOR_PRESETS[cfg.discriminator]),
            "memory_bank": to_dict(MEMORY_BANK_PRESETS[cfg.memory_bank]),
            "vgg": to_dict(VGG_PRESETS[f.vgg]), "gaze": to_dict(GAZE_PRESETS[f.gaze])}
