"""Stage 1's network: the audio encoder E_a and the visual encoder E_v with its contrastive head MLP_cl, and the
CLIP logit scale (TH-PAD supplement §I.3; docs/paper-notes.md §1.5). Its parameter names match ``TalkingHead``'s,
so stage 2 copies E_a and E_v from it by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from thpad.codec import from_dict
from thpad.models.audio_encoder import AudioEncoder, AudioEncoderConfig
from thpad.models.losses import LogitScale
from thpad.models.visual_encoder import VisualEncoder, VisualEncoderConfig


class ContrastiveNet(nn.Module):
    """E_a, E_v with MLP_cl, and the CLIP logit scale: what stage 1 trains (names match ``TalkingHead``)."""

    def __init__(self, audio: AudioEncoderConfig, visual: VisualEncoderConfig, init_temperature: float) -> None:
        super().__init__()
        self.audio_encoder = AudioEncoder(audio)
        self.visual_encoder = VisualEncoder(visual)
        self.logit_scale = LogitScale(init_temperature)
        # MLP_ol and MLP_nl belong to stage 2; frozen here, so they have no gradient to average.
        self.visual_encoder.mlp_ol.requires_grad_(False)
        self.visual_encoder.mlp_nl.requires_grad_(False)

    def forward(self, mel: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: mel (B, 1, n_mels, n_frames); image (B, 3, S, S) in [-1, 1].
        Returns: f_a (B, D), f_cl (B, D) and the scalar logit scale."""
        f_a = self.audio_encoder(mel)  # (B, D)
        f_cl = self.visual_encoder.mlp_cl(self.visual_encoder.encode(image))  # (B, D)
        return f_a, f_cl, self.logit_scale()


def build_net(config: Mapping[str, Any]) -> ContrastiveNet:
    """A freshly initialised ``ContrastiveNet`` from a snapshot config (see ``net_config``)."""
    return ContrastiveNet(from_dict(AudioEncoderConfig, config["audio"]),
                          from_dict(VisualEncoderConfig, config["visual"]), float(config["init_temperature"]))
