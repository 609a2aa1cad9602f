"""Stage 2's loss terms: D's step, G's terms (TH-PAD supplement Eq. I-IV), E_v's pretraining on L_lmk alone, and
the pretraining on reconstruction without the GAN.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from thpad.landmarks import MOUTH_INNER, MOUTH_OUTER
from thpad.models.generator.warp import source_points
from thpad.models.losses import (
    LogitScale,
    adversarial_d_loss,
    adversarial_g_loss,
    box_l1,
    excess_l1,
    feature_matching_loss,
    info_nce_loss,
    orthogonality_loss,
    point_l1,
    pyramid_l1,
    weighted_total,
)
from thpad.models.memory_bank import MemoryBank
from thpad.models.talking_head import TalkingHead, TalkingHeadOutput
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.disentangle.data import Round, make_round
from thpad.pipelines.train.disentangle.networks import PHASE_ONE, LossNets, apply_phase, encoder_parts, phase_one_groups
from thpad.pipelines.train.harness import (
    pretrain,
)
from thpad.pipelines.train.landmark_motion import landmark_motion_loss
from thpad.storage.tracking import StageRun


def discriminator_loss(disc: nn.Module, r: Round, fake: torch.Tensor, cfg: DisentangleConfig) -> torch.Tensor:
    """Eq. I, D's side: real frames against (detached) fakes, averaged over D's scales."""
    real_logits = [s.logits for s in disc(r.real)]
    fake_logits = [s.logits for s in disc(fake.detach())]
    return adversarial_d_loss(real_logits, fake_logits, cfg.loss.gan_kind)


def generator_terms(out: TalkingHeadOutput, r: Round, disc: nn.Module, loss_nets: LossNets, mlp_cl: nn.Module,
                    logit_scale: LogitScale, bank: MemoryBank, cfg: DisentangleConfig, phase: int,
                    landmark: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """The terms of Eq. IV (keys of ``LossWeights``) and L_pix and L_mouth when weighted; L_ol, L_cl and L_lmk
    (ours, with a ``landmark`` head) only in phase one (nothing they reach trains in phase two), L_VGG and L_gaze
    only when their networks are available."""
    weights = cfg.loss.weights
    fake_scales = disc(out.image)
    with torch.no_grad():
        real_scales = disc(r.real)
    terms = {"gan": adversarial_g_loss([s.logits for s in fake_scales], cfg.loss.gan_kind),
             "feat": feature_matching_loss([s.features for s in real_scales], [s.features for s in fake_scales])}
    terms |= pixel_terms(out, r, cfg)
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


def landmark_weights(lip_weight: float, device: torch.device) -> torch.Tensor:
    """L_corr's weights of the 68 landmarks: ``lip_weight`` for the 20 lip points (iBUG 48-67), 1 for the others."""
    weights = torch.ones(68, device=device)  # (68,)
    weights[[*MOUTH_OUTER, *MOUTH_INNER]] = lip_weight
    return weights


def pixel_terms(out: TalkingHeadOutput, r: Round, cfg: DisentangleConfig) -> dict[str, torch.Tensor]:
    """L_pix, L_mouth, L_corr and L_bound, each when its weight is above 0 (the last two only from a warping
    renderer). L_corr is the L1, in grid units, between where the warp reads the photo at the driving frame's
    landmarks and the photo's own landmarks, the lip points weighted by ``loss.corr_lip_weight``; L_bound the excess
    of the warp's tanh logits over ``loss.bound_limit``."""
    weights, terms = cfg.loss.weights, {}
    if weights.pix > 0:
        terms["pix"] = pyramid_l1(r.real, out.image, cfg.loss.pixel_scales)
    if weights.mouth > 0:
        terms["mouth"] = box_l1(r.real, out.image, r.mouth_box)
    if weights.corr > 0 and out.warp is not None:
        terms["corr"] = point_l1(source_points(out.warp, r.landmarks), r.photo_landmarks,
                                 landmark_weights(cfg.loss.corr_lip_weight, r.landmarks.device))
    if weights.bound > 0 and out.warp is not None and out.warp.bounded is not None:
        terms["bound"] = excess_l1(out.warp.bounded, cfg.loss.bound_limit)
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


def pretrain_pixels(head: TalkingHead, logit_scale: LogitScale, landmark: nn.Module | None,
                    batches: Iterator[tuple[int, int, dict[str, Any]]], cfg: DisentangleConfig, device: torch.device,
                    world_size: int, tracker: StageRun) -> None:
    """Reconstruction without the GAN (``pixel_pretrain``): E_id, E_v's phase-one parts, MLP_a2l, the renderer and
    L_lmk's head under Adam (the stage's betas) at ``pixel_pretrain.lr`` times each group's ``lr_scale``, on
    the weighted L_pix, L_mouth and L_lmk. E_v sees the driving frames augmented as in the GAN phase or, without
    ``augment.in_pretraining``, as they are. Draws its batches from ``batches`` (the checkpoints' data position
    includes them); logs ``pretrain/pixels`` every 10 updates (rank 0's tracker)."""
    p, scales = cfg.pixel_pretrain, cfg.lr_scale
    apply_phase(head, logit_scale, cfg, PHASE_ONE, landmark)  # frozen parts in eval mode, the rest training
    param_groups = [group | {"lr": p.lr * getattr(scales, group["name"])}  # MLP_cl and the scale get no gradient
                    for group in phase_one_groups(head, logit_scale, cfg, landmark)]

    def loss_of(batch: dict[str, Any]) -> torch.Tensor:
        r = make_round(batch, cfg, device, augment=cfg.augment.in_pretraining)
        out = head(r.identity, r.driving, r.mel)
        terms = pixel_terms(out, r, cfg)
        if landmark is not None and r.landmark_motion is not None:
            terms["lmk"] = landmark_motion_loss(landmark, out.f_nl, r.landmark_motion, cfg.loss.landmark_motion)
        return weighted_total(terms, cfg.loss.weights)

    pretrain(param_groups, loss_of, batches, -(-p.samples // cfg.schedule.batch_size), p.lr, world_size,
             cfg.schedule.grad_clip, tracker, "pretrain/pixels", cfg.betas)
