"""Chaining of fixed-window motion priors over sequences longer than the window.

TH-PAD supplement §I.4 and Fig. I (docs/paper-notes.md §1.6): a long clip is cut into chunks of at most 128 frames;
each chunk's first frame is given as a known frame equal to the previous chunk's last predicted frame, so
consecutive chunks join smoothly. Used by both the diffusion prior and the auto-regressive prior.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

# (audio (B, t, A), known_mask (B, t), known (B, t, N)) -> sample (B, t, N)
ChunkSampler = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def chunk_spans(length: int, window: int) -> list[tuple[int, int]]:
    """Half-open frame spans [start, end) of the chunks; consecutive chunks share exactly one frame.

    E.g. length 300, window 128 -> [(0, 128), (127, 255), (254, 300)].
    """
    if window < 2:
        raise ValueError(f"a chained window needs at least 2 frames, got {window}")
    if length < 1:
        raise ValueError(f"nothing to sample: length {length}")
    spans, start = [], 0
    while True:
        end = min(start + window, length)
        spans.append((start, end))
        if end == length:
            return spans
        start = end - 1


def iter_chained_chunks(
    sample_chunk: ChunkSampler,
    audio: torch.Tensor,
    nl_dim: int,
    window: int,
    known_mask: torch.Tensor | None = None,
    known: torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """Sample chunk after chunk, fixing each chunk's first frame to the previous chunk's last frame.

    1. Cut [0, L) into overlapping spans (``chunk_spans``).
    2. For each span, take the user's known frames inside it; from the second span on, mark the first frame
       known with the value of the previous chunk's last output frame.
    3. Sample the span with ``sample_chunk`` and yield it before the next span is sampled (generation renders
       each chunk while the prior has not yet sampled the next).
    Args:
        sample_chunk: the prior's window sampler (must keep known frames exactly).
        audio: (B, L, A); known_mask: (B, L) bool; known: (B, L, N).
    Yields:
        (B, end - start, N) chunks, one per span; each chunk after the first repeats the previous one's last frame.
    """
    B, L, _ = audio.shape
    if known_mask is None or known is None:
        known_mask = torch.zeros(B, L, dtype=torch.bool, device=audio.device)
        known = audio.new_zeros(B, L, nl_dim)
    previous: torch.Tensor | None = None
    for start, end in chunk_spans(L, window):
        mask = known_mask[:, start:end].clone()  # (B, t)
        values = known[:, start:end].clone()  # (B, t, N)
        if previous is not None:
            mask[:, 0] = True
            values[:, 0] = previous[:, -1]
        previous = sample_chunk(audio[:, start:end], mask, values)
        yield previous


def stitch_chunks(chunks: list[torch.Tensor]) -> torch.Tensor:
    """Join chained chunks (B, t_i, N), dropping each shared first frame, into (B, L, N)."""
    return torch.cat([chunks[0]] + [c[:, 1:] for c in chunks[1:]], dim=1)  # (B, L, N)
