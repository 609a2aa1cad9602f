"""The encoders that turn frames and audio into the priors' features: E_v (f_nl per frame) and E_a (f_a per 0.2 s
window), taken from stage 2's talking head (docs/paper-notes.md §1.2). Named as in ``TalkingHead`` so that their
state dict is a subset of the talking head's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from thpad.codec import from_dict
from thpad.models.audio_encoder import AudioEncoder
from thpad.models.talking_head import TalkingHeadConfig
from thpad.models.visual_encoder import VisualEncoder


class FeatureEncoders(nn.Module):
    """E_v with its heads and E_a, named as in ``TalkingHead`` so its state dict is a subset of the snapshot's."""

    def __init__(self, cfg: TalkingHeadConfig) -> None:
        super().__init__()
        self.image_size = cfg.visual.image_size
        self.mel_frames = cfg.audio.n_frames  # mel bins per window: 20 = 5 video frames x 4 bins (0.2 s)
        self.visual_encoder = VisualEncoder(cfg.visual)
        self.audio_encoder = AudioEncoder(cfg.audio)

    @torch.no_grad()
    def forward(self, frames: torch.Tensor, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: frames (n, 3, S, S) in [-1, 1]; mels (n, 1, n_mels, n_frames).
        Returns: f_nl (n, nl_dim) and f_a (n, audio_dim)."""
        return self.visual_encoder(frames).f_nl, self.audio_encoder(mels)


def build_encoders(config: Mapping[str, Any], state: Mapping[str, torch.Tensor]) -> FeatureEncoders:
    """``FeatureEncoders`` in eval mode with the given weights (strictly)."""
    encoders = FeatureEncoders(from_dict(TalkingHeadConfig, config))
    encoders.load_state_dict(dict(state), strict=True)
    return encoders.eval()
