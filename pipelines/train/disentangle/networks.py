"""Stage 2's networks, training phases and learning-rate groups, and the frozen networks of its feature losses.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from thpad.codec import to_dict
from thpad.models.contrastive_net import ContrastiveNet
from thpad.models.feature_losses import GazeLoss, GazeLossConfig, PerceptualLoss, PerceptualLossConfig
from thpad.models.gaze import GAZE_PRESETS
from thpad.models.generator.discriminator import DISCRIMINATOR_PRESETS, MultiscaleDiscriminator
from thpad.models.losses import (
    LogitScale,
)
from thpad.models.memory_bank import MEMORY_BANK_PRESETS
from thpad.models.talking_head import TalkingHead, talking_head_snapshot_config
from thpad.models.vgg import VGG_PRESETS
from thpad.pipelines.train.disentangle.config import DisentangleConfig, talking_head_config
from thpad.pipelines.train.harness import (
    learning_rate,
)
from thpad.pipelines.train.landmark_motion import landmark_head

PHASE_ONE, PHASE_TWO = 1, 2


def build_networks(cfg: DisentangleConfig,
                   stage_one: ContrastiveNet) -> tuple[TalkingHead, LogitScale, MultiscaleDiscriminator]:
    """The talking head (E_a, E_v from stage 1; E_id from ``identity_weights`` or random), L_cl's logit scale
    (stage 1's) and D, freshly initialised from the current torch seed."""
    head = TalkingHead(talking_head_config(cfg))
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


def phase_one_groups(head: TalkingHead, logit_scale: LogitScale, cfg: DisentangleConfig,
                     landmark: nn.Module | None = None) -> list[dict[str, Any]]:
    """Adam's parameter groups of the generator side, one per ``trainable_parts`` group of phase one, each with
    its "name" and "params"."""
    parts = trainable_parts(head, logit_scale, cfg, PHASE_ONE, landmark)
    return [{"name": name, "params": [p for m in modules for p in m.parameters()]} for name, modules in parts.items()]


def make_optimizers(head: TalkingHead, logit_scale: LogitScale, disc: nn.Module, cfg: DisentangleConfig,
                    landmark: nn.Module | None = None) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for the generator side (groups "identity", "visual", "audio" and "generator": phase one's trainable
    parts, so the state keeps its shape across phases) and Adam for D ("discriminator")."""
    return (torch.optim.Adam(phase_one_groups(head, logit_scale, cfg, landmark), lr=0.0, betas=cfg.betas),
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


def build_landmark_head(cfg: DisentangleConfig) -> nn.Linear | None:
    """L_lmk's head on f_nl, or None when L_lmk is off."""
    if cfg.loss.weights.lmk <= 0:
        return None
    return landmark_head(talking_head_config(cfg).nl_dim, cfg.loss.landmark_motion)


def network_configs(cfg: DisentangleConfig) -> dict[str, Any]:
    """The resolved config of every network the stage's presets name (part of the run key)."""
    f = cfg.feature_losses
    return {"model": talking_head_snapshot_config(talking_head_config(cfg)),
            "discriminator": to_dict(DISCRIMINATOR_PRESETS[cfg.discriminator]),
            "memory_bank": to_dict(MEMORY_BANK_PRESETS[cfg.memory_bank]),
            "vgg": to_dict(VGG_PRESETS[f.vgg]), "gaze": to_dict(GAZE_PRESETS[f.gaze])}
