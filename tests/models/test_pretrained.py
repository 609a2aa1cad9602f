"""The strict optional-weights loader: accepts declared keys, refuses everything else by name."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torchvision.models import mobilenet_v2, resnet18, resnet50, resnext50_32x4d, vgg19
from torchvision.models.vgg import cfgs, make_layers

from thpad.models.gaze import GAZE_PRESETS, GazeEncoder
from thpad.models.identity_encoder import IDENTITY_PRESETS, IdentityEncoder
from thpad.models.pretrained import match_state_dict
from thpad.models.vgg import VGG_PRESETS, VGG19Features
from thpad.models.visual_encoder import VISUAL_PRESETS, VisualEncoder


def _torchvision_identity_file(tmp_path: Path, **edits: torch.Tensor | None) -> tuple[Path, dict]:
    """A torchvision-layout ResNeXt file (with a classifier head) made from a fresh tiny encoder."""
    torch.manual_seed(1)
    state = dict(IdentityEncoder(IDENTITY_PRESETS["tiny"]).backbone.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    for key, value in edits.items():
        if value is None:
            del state[key]
        else:
            state[key] = value
    path = tmp_path / "resnext.pth"
    torch.save(state, path)
    return path, state


def test_identity_loader_accepts_classifier_and_keeps_new_conv(tmp_path: Path) -> None:
    path, state = _torchvision_identity_file(tmp_path)
    torch.manual_seed(2)
    enc = IdentityEncoder(IDENTITY_PRESETS["tiny"])
    to_map_before = enc.to_map.weight.clone()
    assert enc.load_pretrained(str(path)) is True
    torch.testing.assert_close(enc.backbone.conv1.weight, state["conv1.weight"])
    torch.testing.assert_close(enc.backbone.layer4[0].bn3.running_var, state["layer4.0.bn3.running_var"])
    assert torch.equal(enc.to_map.weight, to_map_before)


def test_loader_refuses_unexpected_key(tmp_path: Path) -> None:
    path, _ = _torchvision_identity_file(tmp_path, **{"extra.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match=r"unexpected key 'extra.weight'") as err:
        IdentityEncoder(IDENTITY_PRESETS["tiny"]).load_pretrained(str(path))
    assert str(path) in str(err.value)


def test_loader_refuses_misshaped_key(tmp_path: Path) -> None:
    path, _ = _torchvision_identity_file(tmp_path, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    with pytest.raises(ValueError, match=r"'conv1.weight' has shape \(64, 3, 3, 3\)") as err:
        IdentityEncoder(IDENTITY_PRESETS["tiny"]).load_pretrained(str(path))
    assert str(path) in str(err.value)


def test_loader_refuses_missing_key_but_not_bn_counters(tmp_path: Path) -> None:
    path, _ = _torchvision_identity_file(tmp_path, **{"layer1.0.bn1.num_batches_tracked": None})
    assert IdentityEncoder(IDENTITY_PRESETS["tiny"]).load_pretrained(str(path))
    path, _ = _torchvision_identity_file(tmp_path, **{"layer1.0.conv1.weight": None})
    with pytest.raises(ValueError, match=r"missing key 'layer1.0.conv1.weight'"):
        IdentityEncoder(IDENTITY_PRESETS["tiny"]).load_pretrained(str(path))


def test_loader_refuses_non_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "bad.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="plain state dict"):
        IdentityEncoder(IDENTITY_PRESETS["tiny"]).load_pretrained(str(path))


def test_no_path_keeps_random_init_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    enc = VisualEncoder(VISUAL_PRESETS["tiny"])
    before = {k: v.clone() for k, v in enc.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="thpad.models.pretrained"):
        assert enc.load_pretrained(None) is False
    assert len([r for r in caplog.records if "random initialisation" in r.message]) == 1
    assert all(torch.equal(before[k], v) for k, v in enc.state_dict().items())


def test_visual_loader_drops_imagenet_classifier(tmp_path: Path) -> None:
    cfg = VISUAL_PRESETS["tiny"]
    state = mobilenet_v2(weights=None, width_mult=cfg.width_mult).state_dict()  # 1000-class head
    torch.save(state, tmp_path / "mbv2.pth")
    enc = VisualEncoder(cfg)
    assert enc.load_pretrained(str(tmp_path / "mbv2.pth"))
    torch.testing.assert_close(enc.backbone.features[0][0].weight, state["features.0.0.weight"])
    assert enc.backbone.classifier[1].weight.shape == (cfg.feature_dim, 1280)


def test_vgg_loader_drops_layers_past_relu5_1(tmp_path: Path) -> None:
    layout = [v if v == "M" else int(v) // 8 for v in cfgs["E"]]  # the tiny width
    state = {f"features.{k}": v for k, v in make_layers(layout).state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(4, 4)
    assert "features.34.weight" in state
    torch.save(state, tmp_path / "vgg19.pth")
    vgg = VGG19Features(VGG_PRESETS["tiny"])
    assert vgg.load_pretrained(str(tmp_path / "vgg19.pth"))
    torch.testing.assert_close(vgg.features[28].weight, state["features.28.weight"])


def test_gaze_loader_drops_l2cs_heads(tmp_path: Path) -> None:
    state = dict(GazeEncoder(GAZE_PRESETS["tiny"]).backbone.state_dict())
    state["fc_yaw_gaze.weight"], state["fc_pitch_gaze.weight"] = torch.zeros(90, 512), torch.zeros(90, 512)
    torch.save(state, tmp_path / "l2cs.pkl")
    assert GazeEncoder(GAZE_PRESETS["tiny"]).load_pretrained(str(tmp_path / "l2cs.pkl"))


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (lambda: IdentityEncoder(IDENTITY_PRESETS["paper"]), lambda: resnext50_32x4d(weights=None)),
        (lambda: VisualEncoder(VISUAL_PRESETS["paper"]), lambda: mobilenet_v2(weights=None)),
        (lambda: VGG19Features(VGG_PRESETS["paper"]), lambda: vgg19(weights=None)),
        (lambda: GazeEncoder(GAZE_PRESETS["paper"]), lambda: resnet18(weights=None)),
        (lambda: GazeEncoder(GAZE_PRESETS["l2cs_resnet50"]), lambda: resnet50(weights=None)),
    ],
    ids=["resnext50", "mobilenet_v2", "vgg19", "resnet18", "resnet50"],
)
def test_paper_networks_accept_torchvision_layout(ours, theirs) -> None:  # noqa: ANN001 - factories
    """A real torchvision ImageNet file of the paper architecture would load (checked on meta)."""
    with torch.device("meta"):
        net, reference = ours(), theirs()
    picked = match_state_dict(net.state_dict(), reference.state_dict(), net.pretrained_spec, "torchvision")
    assert picked
