"""Generation as pure torch (TH-PAD Fig. 2, inference path; supplement §I.4 and Fig. I; docs/paper-notes.md §1.2):
the lip code comes from the audio (E_a, MLP_a2l), the non-lip code from a motion prior sampled from the audio in
chained windows (or given: reenactment, disentanglement views), the identity from one photo (E_id), and the
generator renders the frames window by window, so that nothing here holds a whole video.

Nothing reads files: the caller rebuilds the networks from their snapshots (``build_talking_head``,
``motion_prior.build_prior``) and passes frames and mel windows as tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch

from thpad.models.diffusion.sampling import SamplerConfig
from thpad.models.motion_denoiser import MotionDenoiser
from thpad.models.motion_prior import iter_nl
from thpad.models.shapes import assert_shape
from thpad.models.talking_head import TalkingHead


@dataclass(frozen=True)
class MotionPrior:
    """A trained motion prior: its denoiser (eval mode) and its snapshot config (normalisation, window, process)."""

    net: MotionDenoiser
    config: Mapping[str, Any]


class Identity(NamedTuple):
    """E_id of the source photo, computed once per video, with the photo and its f_nl (what the warping renderer
    moves, and from where)."""

    f_id: torch.Tensor  # (1, id_dim)
    id_map: torch.Tensor  # (1, C, s, s)
    photo: torch.Tensor  # (1, 3, S, S)
    f_nl: torch.Tensor  # (1, N)


@torch.no_grad()
def encode_identity(head: TalkingHead, photo: torch.Tensor) -> Identity:
    """E_id and E_v's f_nl of one aligned photo (3, S, S) in [-1, 1]."""
    f_id, id_map = head.encode_identity(photo[None])  # (1, id_dim), (1, C, s, s)
    return Identity(f_id, id_map, photo[None], head.visual_encoder(photo[None]).f_nl)


@torch.no_grad()
def encode_nonlip(head: TalkingHead, frames: torch.Tensor, batch: int = 64) -> np.ndarray:
    """E_v's non-lip code f_nl = MLP_nl(MLP_ol(E_v(frame))) of aligned frames (n, 3, S, S) -> (n, N) float32
    (keyframes, the anchor photo, a driving video)."""
    out = [head.visual_encoder(frames[i:i + batch]).f_nl for i in range(0, len(frames), batch)]  # (b, N) each
    return torch.cat(out).float().cpu().numpy()


@torch.no_grad()
def encode_audio(head: TalkingHead, windows: torch.Tensor, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """E_a and MLP_a2l over every frame's mel window.

    Args:
        windows: (L, 1, n_mels, W) the 0.2 s mel windows centred on each video frame.
    Returns:
        f_a (L, audio_dim) for the prior and f_l (L, lip_dim) for the generator, float32.
    """
    f_a, f_l = [], []
    for i in range(0, len(windows), batch):
        a, lip = head.encode_audio(windows[i:i + batch])  # (b, A), (b, lip)
        f_a.append(a)
        f_l.append(lip)
    return torch.cat(f_a).float().cpu().numpy(), torch.cat(f_l).float().cpu().numpy()


@torch.no_grad()
def render(head: TalkingHead, identity: Identity, f_nl: np.ndarray, f_l: np.ndarray, batch: int = 64) -> torch.Tensor:
    """The renderer on cat(f_id, f_nl, f_l) for t frames of one identity, without generator noise (no global RNG).

    Args:
        f_nl: (t, N); f_l: (t, lip_dim).
    Returns:
        (t, 3, S, S) frames in [-1, 1].
    """
    t = len(f_nl)
    assert_shape(f_l, (t, head.cfg.lip_dim), "f_l")
    device = identity.f_id.device
    out = []
    for i in range(0, t, batch):
        nl = torch.from_numpy(np.ascontiguousarray(f_nl[i:i + batch])).to(device)  # (b, N)
        lip = torch.from_numpy(np.ascontiguousarray(f_l[i:i + batch])).to(device)  # (b, lip)
        b = len(nl)
        out.append(head.synthesize(identity.photo.expand(b, -1, -1, -1), identity.f_id.expand(b, -1),
                                   identity.id_map.expand(b, -1, -1, -1), nl, lip, noise_mode="none",
                                   source_nl=identity.f_nl.expand(b, -1)))  # (b, 3, S, S)
    return torch.cat(out).clamp_(-1.0, 1.0)


def scale_motion(f_nl: np.ndarray, reference: np.ndarray, scale: float) -> np.ndarray:
    """``reference + scale * (f_nl - reference)``: 0 holds the reference pose and expression, 1 keeps the sample.

    Args:
        f_nl: (t, N); reference: (N,).
    """
    if scale == 1.0:
        return f_nl
    return (reference + scale * (f_nl - reference)).astype(np.float32)  # (t, N)


def iter_prior_nl(prior: MotionPrior, f_a: np.ndarray, sampler: SamplerConfig | None,
                  generator: torch.Generator | None, known: Mapping[int, np.ndarray] | None = None,
                  ) -> Iterator[np.ndarray]:
    """One video's non-lip codes from a prior, window by window (``motion_prior.iter_nl`` for a batch of one).

    Args:
        f_a: (L, A) raw audio features; known: frame index -> (N,) raw f_nl pinned there (mask editing).
    Yields:
        (t, N) float32 chunks that concatenate to (L, N); pinned frames equal their given values exactly.
    """
    L, N = len(f_a), prior.net.cfg.nl_dim
    mask, values = None, None
    if known:
        mask = np.zeros((1, L), bool)
        values = np.zeros((1, L, N), np.float32)
        for frame, code in known.items():
            mask[0, frame], values[0, frame] = True, code
    for chunk in iter_nl(prior.net, prior.config, f_a[None], sampler, generator, mask, values):
        yield chunk[0]  # (t, N)
