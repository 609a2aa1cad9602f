"""A FIFO memory bank of past features, used as extra negatives for the contrastive loss L_cl.

TH-PAD supplement §I.3: "the size of MB, K, is set to 32 which stores 512 features in total" at batch size
16, i.e. the last 32 batches of 512-d features (docs/paper-notes.md §1.5, §9.3). Held as module buffers, so it
moves with ``.to(device)`` and is saved in ``state_dict`` (no global state).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thpad.models.shapes import assert_shape


@dataclass(frozen=True)
class MemoryBankConfig:
    """Capacity (num_batches x batch_size features) and feature width of the memory bank."""

    num_batches: int = 32  # K
    batch_size: int = 16
    dim: int = 512

    @property
    def capacity(self) -> int:
        return self.num_batches * self.batch_size


MEMORY_BANK_PRESETS: dict[str, MemoryBankConfig] = {
    "paper": MemoryBankConfig(),
    "tiny": MemoryBankConfig(num_batches=4, batch_size=4, dim=32),
}


class MemoryBank(nn.Module):
    """Ring buffer holding the most recent ``capacity`` pushed features, oldest first on read."""

    def __init__(self, cfg: MemoryBankConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("bank", torch.zeros(cfg.capacity, cfg.dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next row to write
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # rows filled so far

    def extra_repr(self) -> str:
        return f"capacity={self.cfg.capacity}, dim={self.cfg.dim}"

    def __len__(self) -> int:
        return int(self.count)

    @torch.no_grad()
    def push(self, features: torch.Tensor) -> None:
        """Append a batch (detached), dropping the oldest rows beyond capacity.

        Args:
            features: (b, dim) features of one batch (gather them across ranks first if wanted).
        """
        assert_shape(features, (None, self.cfg.dim), "features")
        cap = self.cfg.capacity
        features = features.detach()[-cap:].to(self.bank.dtype)  # (b', dim), b' <= capacity
        b = features.shape[0]
        rows = (self.ptr + torch.arange(b, device=self.bank.device)) % cap  # (b',)
        self.bank[rows] = features.to(self.bank.device)
        self.ptr.copy_((self.ptr + b) % cap)
        self.count.copy_(torch.clamp(self.count + b, max=cap))

    def negatives(self) -> torch.Tensor:
        """Return the stored features, oldest first, as (N, dim) with N = min(pushed, capacity)."""
        n = int(self.count)
        if n < self.cfg.capacity:
            return self.bank[:n].clone()  # (N, dim)
        p = int(self.ptr)
        return torch.cat([self.bank[p:], self.bank[:p]], dim=0)  # (N, dim)

    def reset(self) -> None:
        """Forget all stored features."""
        self.bank.zero_()
        self.ptr.zero_()
        self.count.zero_()
