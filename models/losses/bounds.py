"""A penalty on logits that have left a range, for heads bounded by a tanh: a saturated tanh passes no gradient, so
a head pushed deep into saturation stays there unless something pulls it back."""

from __future__ import annotations

import torch


def excess_l1(logits: torch.Tensor, limit: float) -> torch.Tensor:
    """Mean of max(|logit| - limit, 0) over all entries: 0 inside [-limit, limit], a constant pull back outside.

    Args:
        logits: any shape; limit: > 0.
    Returns:
        scalar loss.
    """
    if limit <= 0:
        raise ValueError(f"limit must be > 0, got {limit}")
    return torch.relu(logits.abs() - limit).mean()
