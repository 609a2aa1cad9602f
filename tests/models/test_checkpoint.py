"""Snapshot save → load round trips (config dict + state dict, weights_only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.generator import DISCRIMINATOR_PRESETS, DiscriminatorConfig, MultiscaleDiscriminator
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead, TalkingHeadConfig
from thpad.storage.checkpoint import load_snapshot, read_snapshot, save_snapshot, snapshot_path


def test_snapshot_path_is_zero_padded(tmp_path: Path) -> None:
    assert snapshot_path(tmp_path, 1230) == tmp_path / "snapshot-000001230.pt"
    with pytest.raises(ValueError):
        snapshot_path(tmp_path, -1)


def test_talking_head_save_load_gives_identical_output(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = TALKING_HEAD_PRESETS["tiny"]
    net = TalkingHead(cfg)
    net(torch.rand(2, 3, 56, 56), torch.rand(2, 3, 56, 56), torch.rand(2, 1, 80, 20))  # move BN stats
    path = save_snapshot(snapshot_path(tmp_path / "run", 7), to_dict(cfg), net)
    assert [p.name for p in path.parent.iterdir()] == ["snapshot-000000007.pt"]  # no temp file left
    torch.manual_seed(99)
    loaded = load_snapshot(path, lambda d: TalkingHead(from_dict(TalkingHeadConfig, d)))
    assert loaded.cfg == cfg
    inputs = (torch.rand(2, 2, 3, 56, 56), torch.rand(2, 3, 56, 56), torch.rand(2, 1, 80, 20))
    with torch.no_grad():
        a = net.eval()(*inputs, noise_mode="none")
        b = loaded.eval()(*inputs, noise_mode="none")
    assert a.warp is None and b.warp is None  # the synthesis generator
    for x, y in zip(a[:-1], b[:-1], strict=True):
        assert torch.equal(x, y)


def test_discriminator_spectral_norm_state_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = DISCRIMINATOR_PRESETS["tiny"]
    disc = MultiscaleDiscriminator(cfg)
    images = torch.rand(2, 3, 56, 56)
    disc(images)  # one power iteration in train mode updates u, v
    path = save_snapshot(tmp_path / "d.pt", to_dict(cfg), disc)
    loaded = load_snapshot(path, lambda d: MultiscaleDiscriminator(from_dict(DiscriminatorConfig, d)))
    with torch.no_grad():
        for a, b in zip(disc.eval()(images), loaded.eval()(images), strict=True):
            assert torch.equal(a.logits, b.logits)


def test_snapshot_is_plain_data(tmp_path: Path) -> None:
    net = torch.nn.Linear(2, 3)
    path = save_snapshot(tmp_path / "s.pt", {"in": 2, "out": 3, "dims": (1, 2)}, net)
    payload = torch.load(path, weights_only=True)
    assert payload["config"] == {"in": 2, "out": 3, "dims": [1, 2]}
    config, state = read_snapshot(path)
    assert set(state) == {"weight", "bias"}
    with pytest.raises(TypeError):
        save_snapshot(tmp_path / "t.pt", {"bad": object()}, net)
    torch.save({"state_dict": {}}, tmp_path / "u.pt")
    with pytest.raises(ValueError, match="not a snapshot"):
        read_snapshot(tmp_path / "u.pt")
