"""Shape checks at module boundaries, in the spirit of StyleGAN's ``misc.assert_shape``."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def assert_shape(tensor: torch.Tensor, shape: Sequence[int | None], name: str = "tensor") -> None:
    """Raise ``ValueError`` unless ``tensor`` has ``shape``; ``None`` entries match any size."""
    if tensor.ndim != len(shape):
        raise ValueError(f"{name}: expected {len(shape)} dims {tuple(shape)}, got {tuple(tensor.shape)}")
    for i, (size, want) in enumerate(zip(tensor.shape, shape, strict=True)):
        if want is not None and size != want:
            raise ValueError(f"{name}: dim {i} is {size}, expected {want} (shape {tuple(tensor.shape)})")
