"""Tests of the contrastive memory bank (models/memory_bank.py): FIFO order, capacity, detaching, state."""

from __future__ import annotations

import json

import pytest
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.memory_bank import MEMORY_BANK_PRESETS, MemoryBank, MemoryBankConfig

CFG = MemoryBankConfig(num_batches=3, batch_size=2, dim=4)  # capacity 6


def batch(i: int, size: int = 2) -> torch.Tensor:
    """A batch whose rows hold their global index, so order is visible."""
    return torch.arange(i * size, (i + 1) * size, dtype=torch.float32)[:, None].expand(size, 4).clone()


def test_fifo_order_and_capacity():
    bank = MemoryBank(CFG)
    assert bank.negatives().shape == (0, 4) and len(bank) == 0
    bank.push(batch(0))
    assert torch.equal(bank.negatives()[:, 0], torch.tensor([0.0, 1.0]))
    for i in range(1, 5):
        bank.push(batch(i))
    neg = bank.negatives()
    assert neg.shape == (6, 4) and len(bank) == 6
    assert torch.equal(neg[:, 0], torch.arange(4.0, 10.0))  # last 3 batches, oldest first


def test_push_larger_than_capacity_keeps_newest():
    bank = MemoryBank(CFG)
    bank.push(batch(0, size=9))
    assert torch.equal(bank.negatives()[:, 0], torch.arange(3.0, 9.0))


def test_push_detaches():
    bank = MemoryBank(CFG)
    feats = torch.randn(2, 4, requires_grad=True)
    bank.push(feats * 2)
    assert not bank.negatives().requires_grad
    with pytest.raises(ValueError):
        bank.push(torch.randn(2, 5))


def test_state_dict_round_trip(tmp_path):
    bank = MemoryBank(CFG)
    for i in range(4):
        bank.push(batch(i))
    torch.save(bank.state_dict(), tmp_path / "bank.pt")
    restored = MemoryBank(CFG)
    restored.load_state_dict(torch.load(tmp_path / "bank.pt", weights_only=True))
    assert torch.equal(restored.negatives(), bank.negatives())
    bank.push(batch(7))
    restored.push(batch(7))
    assert torch.equal(restored.negatives(), bank.negatives())
    restored.reset()
    assert len(restored) == 0


def test_presets_and_config_round_trip():
    paper = MEMORY_BANK_PRESETS["paper"]
    assert (paper.num_batches, paper.dim, paper.capacity) == (32, 512, 512)
    for cfg in MEMORY_BANK_PRESETS.values():
        assert from_dict(MemoryBankConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
