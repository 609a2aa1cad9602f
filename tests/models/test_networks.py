"""Tiny-preset checks of every network component: shapes, determinism, config round trips."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F

from thpad.codec import ConfigError, from_dict, to_dict
from thpad.models.audio_encoder import AUDIO_PRESETS, AudioEncoder, AudioEncoderConfig
from thpad.models.gaze import GAZE_PRESETS, GazeEncoder, GazeEncoderConfig
from thpad.models.generator import (
    DISCRIMINATOR_PRESETS,
    GENERATOR_PRESETS,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    MultiscaleDiscriminator,
)
from thpad.models.generator.layers import ModulatedConv2d, Upsample
from thpad.models.identity_encoder import IDENTITY_PRESETS, IdentityEncoder, IdentityEncoderConfig
from thpad.models.mlp import MLP, MLP_PRESETS, MLPConfig
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHeadConfig
from thpad.models.vgg import VGG_PRESETS, VGG19Features, VGGConfig
from thpad.models.visual_encoder import VISUAL_PRESETS, VisualEncoder, VisualEncoderConfig

REGISTRIES = [
    (MLPConfig, MLP_PRESETS),
    (IdentityEncoderConfig, IDENTITY_PRESETS),
    (VisualEncoderConfig, VISUAL_PRESETS),
    (AudioEncoderConfig, AUDIO_PRESETS),
    (GeneratorConfig, GENERATOR_PRESETS),
    (DiscriminatorConfig, DISCRIMINATOR_PRESETS),
    (VGGConfig, VGG_PRESETS),
    (GazeEncoderConfig, GAZE_PRESETS),
    (TalkingHeadConfig, TALKING_HEAD_PRESETS),
]
CASES = [(cls, name, cfg) for cls, presets in REGISTRIES for name, cfg in presets.items()]


@pytest.mark.parametrize(("cls", "name", "cfg"), CASES, ids=[f"{c.__name__}-{n}" for c, n, _ in CASES])
def test_config_round_trip_through_json(cls: type, name: str, cfg: object) -> None:
    assert {"paper", "tiny"} <= set(dict(REGISTRIES)[cls])
    assert from_dict(cls, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_config_rejects_unknown_key() -> None:
    data = to_dict(TALKING_HEAD_PRESETS["tiny"])
    data["audio"]["n_filters"] = 3
    with pytest.raises(ConfigError, match="audio.n_filters"):
        from_dict(TalkingHeadConfig, data)


def test_mlp_forms() -> None:
    mapper = MLP(MLPConfig(8, 6, hidden_dim=5))
    embed = MLP(MLPConfig(8, 42, hidden_dim=None, input_relu=True))
    assert [type(m).__name__ for m in mapper.net] == ["Linear", "ReLU", "Linear"]
    assert [type(m).__name__ for m in embed.net] == ["ReLU", "Linear"]
    assert mapper(torch.randn(3, 8)).shape == (3, 6)
    assert embed(torch.randn(3, 8)).shape == (3, 42)


def test_identity_encoder_shapes_and_frame_average() -> None:
    torch.manual_seed(0)
    cfg = IDENTITY_PRESETS["tiny"]
    enc = IdentityEncoder(cfg).eval()
    frames = torch.rand(2, 3, 3, 56, 56) * 2 - 1  # (B, K, 3, H, W)
    f_id, id_map = enc(frames)
    assert f_id.shape == (2, cfg.id_dim) and id_map.shape == (2, cfg.map_channels, 7, 7)
    singles = [enc(frames[:, k]) for k in range(3)]
    torch.testing.assert_close(f_id, torch.stack([s[0] for s in singles]).mean(0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(id_map, torch.stack([s[1] for s in singles]).mean(0), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="identity frames"):
        enc(torch.zeros(2, 3, 64, 64))


def test_identity_encoder_narrow_backbone_keeps_the_structure() -> None:
    wide = IdentityEncoderConfig(image_size=56, blocks=(1, 1, 1, 1), groups=8, width_per_group=4,
                                 use_maxpool=False, dilate_layer4=True, map_channels=32)
    narrow = dataclasses.replace(wide, base_planes=16)
    wide_enc, narrow_enc = IdentityEncoder(wide), IdentityEncoder(narrow)
    assert (wide.id_dim, narrow.id_dim) == (2048, 512)
    wide_state, narrow_state = wide_enc.state_dict(), narrow_enc.state_dict()
    assert wide_state.keys() == narrow_state.keys()  # same module names: same checkpoint layout
    assert narrow_state["backbone.layer4.0.conv3.weight"].shape[0] == 512
    assert narrow_state["backbone.conv1.weight"].shape[0] == 16
    f_id, id_map = narrow_enc(torch.rand(2, 3, 56, 56) * 2 - 1)
    assert f_id.shape == (2, 512) and id_map.shape == (2, 32, 7, 7)
    assert float(narrow_state["backbone.layer2.0.bn1.weight"].mean()) == 1.0  # torchvision's initialisation


def test_visual_encoder_shapes() -> None:
    cfg = VISUAL_PRESETS["tiny"]
    out = VisualEncoder(cfg)(torch.zeros(3, 3, 56, 56))
    assert out.f_v.shape == (3, cfg.feature_dim) and out.f_ol.shape == (3, cfg.ol.out_dim)
    assert out.f_cl.shape == (3, cfg.cl.out_dim) and out.f_nl.shape == (3, 42)


@pytest.mark.parametrize("pooling", ["sap", "asp"])
def test_audio_encoder_shapes(pooling: str) -> None:
    cfg = from_dict(AudioEncoderConfig, {**to_dict(AUDIO_PRESETS["tiny"]), "pooling": pooling})
    assert AudioEncoder(cfg)(torch.rand(4, 1, 80, 20)).shape == (4, cfg.out_dim)


def test_audio_encoder_paper_attention_width() -> None:
    with torch.device("meta"):
        enc = AudioEncoder(AUDIO_PRESETS["paper"])
        out = enc(torch.rand(2, 1, 80, 20))
    assert enc.attention[0].in_channels == 256 * 10  # 256 channels × 80/8 mel bins (docs/paper-notes.md §4)
    assert out.shape == (2, 512)


def _reference_modconv(conv: ModulatedConv2d, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """Per-sample loop without the grouped-conv batching, to check the fused implementation."""
    outs = []
    for b in range(x.shape[0]):
        w = conv.scale * conv.weight[0] * conv.modulation(style[b : b + 1])[0][None, :, None, None]
        if conv.demodulate:
            w = w / (w.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        if conv.upsample:
            y = conv.blur(F.conv_transpose2d(x[b : b + 1], w.transpose(0, 1), stride=2))
        else:
            y = F.conv2d(x[b : b + 1], w, padding=conv.padding)
        outs.append(y)
    return torch.cat(outs)


@pytest.mark.parametrize("upsample", [False, True])
def test_modulated_conv_matches_per_sample_reference(upsample: bool) -> None:
    torch.manual_seed(0)
    conv = ModulatedConv2d(4, 5, 3, style_dim=6, upsample=upsample)
    x, style = torch.randn(3, 4, 7, 7), torch.randn(3, 6)
    out = conv(x, style)
    assert out.shape == ((3, 5, 14, 14) if upsample else (3, 5, 7, 7))
    torch.testing.assert_close(out, _reference_modconv(conv, x, style), atol=1e-5, rtol=1e-4)


def test_upsample_keeps_constant_images_constant() -> None:
    out = Upsample((1, 3, 3, 1))(torch.ones(1, 3, 8, 8))
    assert out.shape == (1, 3, 16, 16)
    torch.testing.assert_close(out[..., 2:-2, 2:-2], torch.ones(1, 3, 12, 12))


def test_generator_shapes_range_and_noise_modes() -> None:
    torch.manual_seed(0)
    cfg = GENERATOR_PRESETS["tiny"]
    gen = Generator(cfg, style_dim=10)
    id_map, style = torch.randn(2, cfg.channels[0], 7, 7), torch.randn(2, 10)
    image = gen(id_map, style, noise_mode="none")
    assert image.shape == (2, 3, cfg.out_size, cfg.out_size) == (2, 3, 56, 56)
    assert image.abs().max() <= 1
    torch.testing.assert_close(image, gen(id_map, style, noise_mode="none"))
    with pytest.raises(ValueError, match="style"):
        gen(id_map, torch.randn(2, 11))


def test_discriminator_features_start_with_input() -> None:
    cfg = DISCRIMINATOR_PRESETS["tiny"]
    images = torch.rand(2, 3, 56, 56) * 2 - 1
    outputs = MultiscaleDiscriminator(cfg)(images)
    assert len(outputs) == cfg.num_scales
    assert torch.equal(outputs[0].features[0], images)
    assert outputs[1].features[0].shape == (2, 3, 28, 28)
    for out in outputs:
        assert len(out.features) == cfg.n_layers + 1
        assert out.logits.shape[:2] == (2, 1)


def test_vgg_and_gaze_are_frozen_feature_nets() -> None:
    images = torch.rand(2, 3, 56, 56) * 2 - 1
    vgg, gaze = VGG19Features(VGG_PRESETS["tiny"]), GazeEncoder(GAZE_PRESETS["tiny"])
    feats = vgg(images)
    assert [f.shape[-1] for f in feats] == [56, 28, 14, 7, 3]
    assert [f.shape[1] for f in feats] == [8, 16, 32, 64, 64]
    assert gaze(images).shape == (2, 512)
    for net in (vgg, gaze):
        net.train()
        assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_paper_loss_networks_on_meta() -> None:
    with torch.device("meta"):
        images = torch.zeros(1, 3, 224, 224)
        feats = VGG19Features(VGG_PRESETS["paper"])(images)
        gaze = GazeEncoder(GAZE_PRESETS["paper"])(images)
        l2cs = GazeEncoder(GAZE_PRESETS["l2cs_resnet50"])(images)
        logits = [o.logits for o in MultiscaleDiscriminator(DISCRIMINATOR_PRESETS["paper"])(images)]
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512] and feats[-1].shape[-1] == 14
    assert gaze.shape == (1, 512) and l2cs.shape == (1, 2048)
    assert len(logits) == 2


@pytest.mark.parametrize(
    ("build", "inputs"),
    [
        (lambda: IdentityEncoder(IDENTITY_PRESETS["tiny"]), lambda: (torch.rand(2, 3, 56, 56),)),
        (lambda: VisualEncoder(VISUAL_PRESETS["tiny"]), lambda: (torch.rand(2, 3, 56, 56),)),
        (lambda: AudioEncoder(AUDIO_PRESETS["tiny"]), lambda: (torch.rand(2, 1, 80, 20),)),
        (
            lambda: Generator(GENERATOR_PRESETS["tiny"], 12),
            lambda: (torch.randn(2, 32, 7, 7), torch.randn(2, 12)),
        ),
        (lambda: MultiscaleDiscriminator(DISCRIMINATOR_PRESETS["tiny"]), lambda: (torch.rand(2, 3, 56, 56),)),
    ],
    ids=["identity", "visual", "audio", "generator", "discriminator"],
)
def test_seeded_determinism(build, inputs) -> None:  # noqa: ANN001 - parametrized factories
    results = []
    for _ in range(2):
        torch.manual_seed(123)
        net = build()
        out = net(*inputs())  # train mode: generator noise and batch statistics included
        results.append(torch.cat([t.flatten() for t in _tensors(out)]))
    assert torch.equal(results[0], results[1])


def _tensors(out: object) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, tuple | list):
        return [t for item in out for t in _tensors(item)]
    raise TypeError(type(out))
