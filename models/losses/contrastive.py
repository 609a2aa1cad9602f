"""Audio-visual contrastive loss (L_cl) with a learnable temperature, and the orthogonality loss (L_ol).

TH-PAD supplement §I.3 ("the same implementation as in CLIP") and the memory bank MB of K=32 batches
(docs/paper-notes.md §1.5, §9.3): symmetric InfoNCE between L2-normalised f^v_cl and f^a, where the visual->audio
direction also scores the audio features queued in the memory bank as extra negatives. L_ol (docs/paper-notes.md
§9.4) is the mean squared cosine similarity between f^v_ol and f^a of the same frame.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from thpad.models.shapes import assert_shape


class LogitScale(nn.Module):
    """Learnable CLIP logit scale 1/temperature, stored as its log and clamped to [1, max_scale]."""

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.max_log_scale = math.log(max_scale)

    def forward(self) -> torch.Tensor:
        """Return the scalar logit scale exp(clamp(log_scale, 0, log max_scale))."""
        return self.log_scale.clamp(0.0, self.max_log_scale).exp()

    def extra_repr(self) -> str:
        return f"max_scale={math.exp(self.max_log_scale):g}"


def info_nce_loss(
    f_v: torch.Tensor,
    f_a: torch.Tensor,
    logit_scale: torch.Tensor,
    audio_negatives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric CLIP-style InfoNCE between visual and audio features of the same frames.

    1. L2-normalise f_v, f_a (and the queued negatives).
    2. visual->audio: logits = scale * v @ [a; negatives]^T, (B, B + K); the target of row i is column i.
    3. audio->visual: logits = scale * a @ v^T, (B, B); the target of row i is column i.
    4. Return the mean of the two cross-entropies.
    Args:
        f_v: (B, D) visual contrastive features f^v_cl.
        f_a: (B, D) audio features f^a of the same frames (row i pairs with row i).
        logit_scale: scalar 1/temperature, e.g. ``LogitScale()()``.
        audio_negatives: (K, D) extra audio negatives from the memory bank (detached), or None.
    Returns:
        scalar loss.
    """
    B, D = f_v.shape
    assert_shape(f_a, (B, D), "f_a")
    v = F.normalize(f_v, dim=-1)  # (B, D)
    a = F.normalize(f_a, dim=-1)  # (B, D)
    a_all = a
    if audio_negatives is not None and audio_negatives.numel() > 0:
        assert_shape(audio_negatives, (None, D), "audio_negatives")
        neg = F.normalize(audio_negatives.detach().to(a.dtype), dim=-1)  # (K, D)
        a_all = torch.cat([a, neg], dim=0)  # (B + K, D)
    labels = torch.arange(B, device=f_v.device)
    loss_v2a = F.cross_entropy(logit_scale * v @ a_all.t(), labels)  # logits (B, B + K)
    loss_a2v = F.cross_entropy(logit_scale * a @ v.t(), labels)  # logits (B, B)
    return 0.5 * (loss_v2a + loss_a2v)


def orthogonality_loss(f_ol: torch.Tensor, f_a: torch.Tensor) -> torch.Tensor:
    """Mean squared cosine similarity between f^v_ol and f^a of the same frame (L_ol), 0 when orthogonal.

    Args:
        f_ol: (..., D) visual orthogonal-branch features; f_a: (..., D) audio features.
    Returns:
        scalar loss.
    """
    cos = F.cosine_similarity(f_ol, f_a, dim=-1, eps=1e-8)  # (...)
    return cos.pow(2).mean()
