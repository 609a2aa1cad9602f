"""The warping renderer: an untrained one returns the photo, its flow moves pixels, the codes reach the image."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from thpad.models.generator.warp import (
    IDENTITY_AFFINE,
    WARP_PRESETS,
    WarpFields,
    WarpRenderer,
    WarpRendererConfig,
    compose,
    pixel_to_grid,
    source_points,
    warp_image,
)
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead


def _photo(batch: int = 2, size: int = 56) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1  # (B, 3, S, S)


def test_zero_flow_samples_the_source_exactly() -> None:
    photo = _photo()
    torch.testing.assert_close(warp_image(photo, torch.zeros(2, 2, 56, 56)), photo, atol=1e-4, rtol=0)


def test_a_flow_of_one_pixel_shifts_the_image_by_one_pixel() -> None:
    photo = _photo()
    flow = torch.zeros(2, 2, 56, 56)
    flow[:, 0] = 2.0 / 56  # one pixel in grid_sample's [-1, 1] x coordinates: output x reads source x + 1
    shifted = warp_image(photo, flow)
    torch.testing.assert_close(shifted[..., :-1], photo[..., 1:], atol=1e-4, rtol=0)
    torch.testing.assert_close(shifted[..., -1], photo[..., -1], atol=1e-4, rtol=0)  # the border repeats


def _dot_fields(theta: torch.Tensor, flow: torch.Tensor) -> WarpFields:
    """Fields that show the warped photo only (mask 1)."""
    B, _, S, _ = flow.shape
    return WarpFields(theta, flow, torch.ones(B, 1, S, S), torch.zeros(B, 3, S, S))


def test_source_points_say_where_the_warp_reads_a_landmark() -> None:
    """A photo with one bright pixel, moved by an affine map and a flow: at the pixel where the render shows the
    dot, ``source_points`` gives the dot's place in the photo (landmarks in pixels, centres at integers)."""
    S, dot = 32, (9, 20)  # x, y of the bright pixel in the photo
    photo = torch.full((1, 3, S, S), -1.0)
    photo[0, :, dot[1], dot[0]] = 1.0
    theta = torch.tensor([[[1.0, 0.0, 6 * 2 / S], [0.0, 1.0, -3 * 2 / S]]])  # output (x, y) reads (x + 6, y - 3)
    flow = torch.zeros(1, 2, S, S)
    flow[:, 0] = 2 * 2 / S  # and 2 more pixels to the right
    fields = _dot_fields(theta, flow)
    out = compose(photo, fields)[0, 0]  # (S, S)
    y, x = divmod(int(out.argmax()), S)
    assert (x, y) == (dot[0] - 8, dot[1] + 3)
    found = source_points(fields, pixel_to_grid(torch.tensor([[[float(x), float(y)]]]), S))  # (1, 1, 2)
    torch.testing.assert_close(found, pixel_to_grid(torch.tensor([[list(map(float, dot))]]), S))


def test_source_points_of_the_identity_warp_are_the_points() -> None:
    S = 16
    theta = torch.tensor(IDENTITY_AFFINE).view(1, 2, 3).expand(3, 2, 3)
    points = torch.rand(3, 5, 2) * 2 - 1  # (B, N, 2) anywhere in the image
    torch.testing.assert_close(source_points(_dot_fields(theta, torch.zeros(3, 2, S, S)), points), points)


def test_the_renderer_is_its_fields_composed() -> None:
    torch.manual_seed(0)
    cfg = WARP_PRESETS["tiny"]
    renderer = WarpRenderer(cfg, style_dim=6).eval()
    torch.nn.init.normal_(renderer.motion.weight, std=0.05)
    torch.nn.init.normal_(renderer.affine.weight, std=0.05)
    args = (_photo(), torch.randn(2, cfg.map_channels, 7, 7), torch.randn(2, 6))
    with torch.no_grad():
        fields = renderer.fields(*args, noise_mode="none")
        assert fields.theta.shape == (2, 2, 3) and fields.flow.shape == (2, 2, 56, 56)
        assert fields.bounded is not None and fields.bounded.shape == (2, 6 + 2 * 28 * 28)  # flow_level 1: 28 px
        offset = cfg.max_affine * torch.tanh(fields.bounded[:, :6]).view(2, 2, 3)
        torch.testing.assert_close(fields.theta - offset, torch.tensor(IDENTITY_AFFINE).view(1, 2, 3).expand(2, 2, 3))
        torch.testing.assert_close(renderer(*args, noise_mode="none"), compose(args[0], fields))


def test_an_untrained_renderer_is_mostly_the_photo() -> None:
    torch.manual_seed(0)
    cfg = WARP_PRESETS["tiny"]
    renderer = WarpRenderer(cfg, style_dim=10).eval()
    photo = _photo()
    with torch.no_grad():
        out = renderer(photo, torch.randn(2, cfg.map_channels, 7, 7), torch.randn(2, 10), noise_mode="none")
    mask = torch.sigmoid(torch.tensor(cfg.mask_bias))
    assert out.shape == photo.shape and out.abs().max() <= 1.0
    # out = m * photo + (1 - m) * fill with |fill| <= 1: the photo dominates
    assert float((out - mask * photo).abs().max()) <= float(1 - mask) + 1e-6


def test_the_affine_map_and_the_flow_are_bounded() -> None:
    torch.manual_seed(0)
    cfg = WARP_PRESETS["tiny"]
    renderer = WarpRenderer(cfg, style_dim=4).eval()
    with torch.no_grad():  # heads driven far past any sensible motion, the mask all photo
        renderer.affine.bias.fill_(1e3)
        renderer.motion.bias.copy_(torch.tensor([1e3, 1e3, 1e3]))
        out = renderer(_photo(), torch.zeros(2, 32, 7, 7), torch.zeros(2, 4), noise_mode="none")
    theta = torch.tensor([[1 + cfg.max_affine, cfg.max_affine, cfg.max_affine],
                          [cfg.max_affine, 1 + cfg.max_affine, cfg.max_affine]]).expand(2, 2, 3)
    expected = warp_image(_photo(), torch.full((2, 2, 56, 56), cfg.max_flow), theta)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="max_flow"):
        dataclasses.replace(cfg, max_flow=0.0)


def test_flow_level_may_be_any_level() -> None:
    torch.manual_seed(0)
    for level in range(4):
        cfg = dataclasses.replace(WARP_PRESETS["tiny"], flow_level=level)
        out = WarpRenderer(cfg, style_dim=6)(_photo(1), torch.randn(1, 32, 7, 7), torch.randn(1, 6))
        assert out.shape == (1, 3, 56, 56)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="halve"):
        WarpRendererConfig(image_size=50, channels=(8, 8, 8))
    with pytest.raises(ValueError, match="warp.image_size"):
        dataclasses.replace(TALKING_HEAD_PRESETS["tiny"], renderer="warp", warp=WARP_PRESETS["paper"])


def test_the_codes_reach_the_warped_image_through_the_talking_head() -> None:
    torch.manual_seed(0)
    head = TalkingHead(dataclasses.replace(TALKING_HEAD_PRESETS["tiny"], renderer="warp"))
    torch.nn.init.normal_(head.generator.motion.weight, std=0.05)  # a trained flow head is not zero
    g = torch.Generator().manual_seed(0)
    identity = torch.rand(2, 2, 3, 56, 56, generator=g) * 2 - 1  # (B, K, 3, S, S): the first frame is warped
    out = head(identity, torch.rand(2, 3, 56, 56, generator=g) * 2 - 1, torch.rand(2, 1, 80, 20, generator=g))
    assert out.image.shape == (2, 3, 56, 56)
    assert out.warp is not None and out.warp.flow.shape == (2, 2, 56, 56)
    out.image.mean().backward()
    for part in (head.identity_encoder, head.visual_encoder, head.mlp_a2l, head.generator):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    with torch.no_grad():
        other = head.synthesize(identity, out.f_id, out.id_map, out.f_nl.roll(1, 0), out.f_l, noise_mode="none")
        own = head.synthesize(identity, out.f_id, out.id_map, out.f_nl, out.f_l, noise_mode="none")
    assert float((other - own).abs().mean()) > 1e-4  # f_nl moves the pixels


def test_the_paper_preset_keeps_the_synthesis_generator() -> None:
    assert TALKING_HEAD_PRESETS["paper"].renderer == "synthesis"
    assert TALKING_HEAD_PRESETS["tiny"].renderer == "synthesis"  # the stage's ``renderer`` param chooses
