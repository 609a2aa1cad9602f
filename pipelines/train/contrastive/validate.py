"""Stage 1's validation (rank 0, EMA network): audio-to-frame retrieval over fixed val pairs, within and across
clips, and the similarity figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from thpad.models.contrastive_net import ContrastiveNet
from thpad.pipelines.metrics.retrieval import retrieval_scores
from thpad.pipelines.train.frames import MEL_BINS_PER_FRAME, FrameSamplingConfig
from thpad.storage.readers import iter_raw
from thpad.storage.shards import MEL, decode_frames, load_npy
from thpad.storage.uri import Storage
from thpad.storage.windows import mel_window

ValBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # images (N, 3, S, S), mels (N, 1, M, W), clips (N,)


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


def similarity_figure(sim: torch.Tensor, title: str) -> Figure:
    """An image of the (N, N) audio-to-frame similarity matrix (the diagonal holds the true pairs)."""
    fig = Figure(figsize=(5, 4.5), dpi=100)
    ax = fig.add_subplot()
    shown = ax.imshow(sim.cpu().numpy(), cmap="viridis")  # autoscaled: early differences are small
    ax.set(xlabel="frame", ylabel="audio window", title=title)
    fig.colorbar(shown, ax=ax, label="cosine similarity")
    return fig


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
