"""The assembled TalkingHead: wiring, both lip sources, inference path, paper dimensions."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from thpad.models.mlp import MLPConfig
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead, TalkingHeadConfig


def _inputs(batch: int = 2, size: int = 56) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    identity = torch.rand(batch, 2, 3, size, size, generator=g) * 2 - 1  # (B, K, 3, H, W)
    driving = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
    mel = torch.rand(batch, 1, 80, 20, generator=g)
    return identity, driving, mel


def test_tiny_training_forward_shapes_and_style_order() -> None:
    torch.manual_seed(0)
    cfg = TALKING_HEAD_PRESETS["tiny"]
    net = TalkingHead(cfg)
    out = net(*_inputs())
    assert out.f_id.shape == (2, 512) and out.id_map.shape == (2, 32, 7, 7)
    assert out.f_nl.shape == (2, 42) and out.f_l.shape == (2, cfg.lip_dim)
    assert out.f_a.shape == out.f_cl.shape == out.f_ol.shape == (2, cfg.audio.out_dim)
    assert out.style.shape == (2, cfg.style_dim) and cfg.style_dim == 512 + 42 + cfg.lip_dim
    assert out.image.shape == (2, 3, 56, 56)
    torch.testing.assert_close(out.style, torch.cat([out.f_id, out.f_nl, out.f_l], dim=1))
    torch.testing.assert_close(out.f_l, net.mlp_a2l(out.f_a))
    out.image.mean().backward()  # gradients reach every trained part
    for part in (net.identity_encoder, net.visual_encoder, net.audio_encoder, net.mlp_a2l):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_visual_cl_lip_source_feeds_f_cl() -> None:
    torch.manual_seed(0)
    cfg = dataclasses.replace(TALKING_HEAD_PRESETS["tiny"], lip_source="visual_cl")
    net = TalkingHead(cfg).eval()
    out = net(*_inputs(), noise_mode="none")
    torch.testing.assert_close(out.f_l, net.mlp_a2l(out.f_cl))


def test_inference_with_given_non_lip_code_matches_training_wiring() -> None:
    torch.manual_seed(0)
    net = TalkingHead(TALKING_HEAD_PRESETS["tiny"]).eval()
    identity, driving, mel = _inputs()
    with torch.no_grad():
        out = net(identity, driving, mel, noise_mode="none")
        image = net.infer(identity, out.f_nl, mel, noise_mode="none")
    torch.testing.assert_close(image, out.image)
    with pytest.raises(ValueError, match="f_nl"):
        net.infer(identity, torch.zeros(2, 40), mel)


def test_inconsistent_config_is_refused() -> None:
    tiny = TALKING_HEAD_PRESETS["tiny"]
    with pytest.raises(ValueError, match="a2l.in_dim"):
        dataclasses.replace(tiny, a2l=MLPConfig(16, 32, hidden_dim=None, input_relu=True))
    with pytest.raises(ValueError, match="generator.out_size"):
        dataclasses.replace(tiny, generator=dataclasses.replace(tiny.generator, channels=(32, 32, 24)))


def test_paper_preset_dimensions_on_meta() -> None:
    cfg = TALKING_HEAD_PRESETS["paper"]
    assert (cfg.identity.id_dim, cfg.nl_dim, cfg.lip_dim, cfg.style_dim) == (2048, 42, 470, 2560)
    assert cfg.generator.out_size == 224 and cfg.generator.channels == (512, 512, 512, 512, 256, 128)
    with torch.device("meta"):
        net = TalkingHead(cfg)
        out = net(torch.zeros(1, 3, 224, 224), torch.zeros(1, 3, 224, 224), torch.zeros(1, 1, 80, 20))
    assert out.f_id.shape == (1, 2048) and out.id_map.shape == (1, 512, 7, 7)
    assert out.f_v.shape == out.f_ol.shape == out.f_cl.shape == out.f_a.shape == (1, 512)
    assert out.f_nl.shape == (1, 42) and out.f_l.shape == (1, 470) and out.style.shape == (1, 2560)
    assert out.image.shape == (1, 3, 224, 224)
    assert net.generator.conv1.conv.modulation.weight.shape == (512, 2560)
    assert len(net.generator.stages) == 5


def test_config_default_is_paper() -> None:
    assert TalkingHeadConfig() == TALKING_HEAD_PRESETS["paper"]
