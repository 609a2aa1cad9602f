"""Feature losses are off without weights (and say why), on with random features only when asked,
and on with a weights file, which they load."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from thpad.models.feature_losses import GazeLoss, GazeLossConfig, PerceptualLoss, PerceptualLossConfig
from thpad.models.gaze import GAZE_PRESETS, GazeEncoder
from thpad.models.vgg import VGG_PRESETS


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, 56, 56, generator=gen) * 2 - 1, torch.rand(2, 3, 56, 56, generator=gen) * 2 - 1


def test_unavailable_without_weights() -> None:
    loss = PerceptualLoss(PerceptualLossConfig(vgg=VGG_PRESETS["tiny"]))
    assert not loss.available and "unavailable: no weights configured" in loss.status
    with pytest.raises(RuntimeError, match="unavailable"):
        loss(*_images())
    gaze = GazeLoss(GazeLossConfig(encoder=GAZE_PRESETS["tiny"]))
    assert not gaze.available and gaze.net is None


def test_random_features_only_when_asked() -> None:
    loss = PerceptualLoss(PerceptualLossConfig(vgg=VGG_PRESETS["tiny"], allow_random_features=True))
    assert loss.available and "RANDOM" in loss.status
    real, fake = _images()
    assert loss(real, real).item() == 0.0
    assert loss(real, fake).item() > 0.0


def test_gaze_loss_loads_its_weights(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = GazeEncoder(GAZE_PRESETS["tiny"])
    path = tmp_path / "gaze.pt"
    torch.save(source.backbone.state_dict(), path)  # an L2CS/torchvision-layout file
    loss = GazeLoss(GazeLossConfig(encoder=GAZE_PRESETS["tiny"], weights=str(path)))
    assert loss.available and str(path) in loss.status
    for name, value in source.state_dict().items():
        assert torch.equal(loss.net.state_dict()[name], value), name
    real, fake = _images()
    assert loss(real, fake).item() > 0.0
