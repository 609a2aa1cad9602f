"""Audio-to-frame retrieval scores of a similarity matrix: stage 1's validation, and the sync measure of evaluation."""

from __future__ import annotations

import torch


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
