"""Tests of the training losses (models/losses): GAN phases and signs, feature matching, perceptual, gaze,
contrastive InfoNCE with memory-bank negatives, orthogonality, velocity, and the loss weights."""

from __future__ import annotations

import json
import math

import pytest
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.losses import (
    LOSS_PRESETS,
    LogitScale,
    LossConfig,
    LossWeights,
    adversarial_d_loss,
    adversarial_g_loss,
    box_l1,
    excess_l1,
    feature_matching_loss,
    gaze_loss,
    info_nce_loss,
    masked_mse,
    orthogonality_loss,
    perceptual_loss,
    point_l1,
    pyramid_l1,
    velocity_loss,
    weighted_total,
)

KINDS = ("nonsaturating", "hinge")


def logits(value: float) -> list[torch.Tensor]:
    """Two discriminator scales whose logits all equal ``value``."""
    return [torch.full((2, 1, 4, 4), value), torch.full((2, 1, 2, 2), value)]


def test_nonsaturating_values():
    assert adversarial_g_loss(logits(0.0), "nonsaturating").item() == pytest.approx(math.log(2))
    assert adversarial_d_loss(logits(0.0), logits(0.0), "nonsaturating").item() == pytest.approx(2 * math.log(2))


def test_hinge_values():
    assert adversarial_g_loss(logits(0.5), "hinge").item() == pytest.approx(-0.5)
    assert adversarial_d_loss(logits(2.0), logits(-2.0), "hinge").item() == 0.0
    assert adversarial_d_loss(logits(0.0), logits(0.0), "hinge").item() == pytest.approx(2.0)


@pytest.mark.parametrize("kind", KINDS)
def test_gan_signs(kind):
    # G wants higher fake logits; D wants higher real and lower fake logits.
    assert adversarial_g_loss(logits(1.0), kind) < adversarial_g_loss(logits(-1.0), kind)
    assert adversarial_d_loss(logits(0.5), logits(-0.5), kind) < adversarial_d_loss(logits(-0.5), logits(0.5), kind)
    fake = [z.clone().requires_grad_() for z in logits(0.0)]
    adversarial_g_loss(fake, kind).backward()
    assert all((z.grad < 0).all() for z in fake)  # gradient descent raises the fake logits


def test_unknown_gan_kind():
    with pytest.raises(ValueError, match="GAN"):
        adversarial_g_loss(logits(0.0), "wasserstein")


def test_feature_matching_divides_by_scales_and_detaches_real():
    real = [[torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 4, 4)] for _ in range(2)]
    fake = [[torch.ones(2, 3, 8, 8, requires_grad=True), torch.ones(2, 4, 4, 4, requires_grad=True)] for _ in range(2)]
    loss = feature_matching_loss(real, fake)
    assert loss.item() == pytest.approx(2.0)  # (1 + 1 per scale) * 2 scales / 2 scales
    assert feature_matching_loss(real[:1], fake[:1]).item() == pytest.approx(2.0)
    assert feature_matching_loss(real, real).item() == 0.0
    real_grad = [[z.clone().requires_grad_() for z in scale] for scale in real]
    feature_matching_loss(real_grad, fake).backward()
    assert real_grad[0][0].grad is None and fake[0][0].grad is not None


def test_perceptual_layer_weights():
    real = [torch.zeros(1, 2, 4, 4) for _ in range(5)]
    fake = [torch.ones(1, 2, 4, 4) for _ in range(5)]
    assert perceptual_loss(real, fake).item() == pytest.approx(1 / 32 + 1 / 16 + 1 / 8 + 1 / 4 + 1)
    assert perceptual_loss(real[:2], fake[:2], (1.0, 2.0)).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        perceptual_loss(real, fake, (1.0,))


def test_gaze_distances():
    real, fake = torch.zeros(2, 8), torch.full((2, 8), 2.0)
    assert gaze_loss(real, fake).item() == pytest.approx(2.0)
    assert gaze_loss(real, fake, "l2").item() == pytest.approx(4.0)
    with pytest.raises(ValueError):
        gaze_loss(real, fake, "cosine")


def test_info_nce_matched_lower_than_shuffled():
    g = torch.Generator().manual_seed(0)
    f_v = torch.randn(16, 32, generator=g)
    f_a = f_v + 0.1 * torch.randn(16, 32, generator=g)
    scale = LogitScale()()
    matched = info_nce_loss(f_v, f_a, scale)
    shuffled = info_nce_loss(f_v, f_a[torch.roll(torch.arange(16), 1)], scale)
    assert matched < 0.1 < shuffled


def test_info_nce_memory_bank_negatives():
    g = torch.Generator().manual_seed(0)
    f_v, f_a, negatives = torch.randn(8, 32, generator=g), torch.randn(8, 32, generator=g), torch.randn(20, 32)
    scale = torch.tensor(10.0)
    plain = info_nce_loss(f_v, f_a, scale)
    assert info_nce_loss(f_v, f_a, scale, negatives) > plain  # more negatives, larger v->a loss
    assert info_nce_loss(f_v, f_a, scale, torch.zeros(0, 32)) == plain  # an empty bank changes nothing
    f_v.requires_grad_()
    info_nce_loss(f_v, f_a, LogitScale()(), negatives.requires_grad_()).backward()
    assert negatives.grad is None and f_v.grad is not None


def test_logit_scale_init_clamp_and_state():
    temp = LogitScale()
    assert temp().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        temp.log_scale.fill_(10.0)
    assert temp().item() == pytest.approx(100.0, rel=1e-5)
    other = LogitScale(init_temperature=0.5)
    other.load_state_dict(temp.state_dict())
    assert other().item() == pytest.approx(100.0, rel=1e-5)


def test_orthogonality_loss():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert orthogonality_loss(torch.tensor([[0.0, 3.0], [5.0, 0.0]]), a).item() == pytest.approx(0.0)
    assert orthogonality_loss(torch.tensor([[2.0, 0.0], [0.0, -1.0]]), a).item() == pytest.approx(1.0)
    assert orthogonality_loss(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), a).item() == pytest.approx(0.5)


def test_velocity_loss_and_padding():
    target = torch.randn(2, 10, 42)
    assert velocity_loss(target + 3.0, target).item() == pytest.approx(0.0, abs=1e-10)  # offsets have no velocity
    pred = target.clone()
    pred[:, 8:] += torch.randn(2, 2, 42)
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[:, 8:] = False
    assert velocity_loss(pred, target, valid).item() == 0.0
    assert velocity_loss(pred, target).item() > 0.0


def test_masked_mse():
    pred, target = torch.zeros(1, 4, 3), torch.ones(1, 4, 3)
    mask = torch.tensor([[True, False, False, False]])
    assert masked_mse(pred, target, mask).item() == 1.0
    assert masked_mse(pred, target, torch.zeros_like(mask)).item() == 0.0


def test_loss_weights_and_presets():
    assert LOSS_PRESETS["paper"].weights == LossWeights()  # supplement Eq. IV: all lambdas 1
    assert LOSS_PRESETS["paper"].gan_kind == "nonsaturating"
    pcavs = LOSS_PRESETS["pcavs"]
    assert (pcavs.gan_kind, pcavs.weights.feat, pcavs.weights.vgg, pcavs.weights.cl) == ("hinge", 10.0, 10.0, 100.0)
    terms = {"gan": torch.tensor(1.0), "vgg": torch.tensor(2.0)}
    assert weighted_total(terms, pcavs.weights).item() == pytest.approx(21.0)
    with pytest.raises(KeyError, match="unknown loss term"):
        weighted_total({"pixel": torch.tensor(1.0)}, LossWeights())


def test_loss_config_round_trip():
    for cfg in LOSS_PRESETS.values():
        assert from_dict(LossConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg


def test_pyramid_l1_is_the_pixel_l1_at_one_scale_and_averages_the_levels() -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    torch.testing.assert_close(pyramid_l1(real, fake, 1), (real - fake).abs().mean())
    half = (torch.nn.functional.avg_pool2d(real, 2) - torch.nn.functional.avg_pool2d(fake, 2)).abs().mean()
    torch.testing.assert_close(pyramid_l1(real, fake, 2), ((real - fake).abs().mean() + half) / 2)
    assert float(pyramid_l1(real, real.clone(), 3)) == 0.0
    fake.requires_grad_(True)
    pyramid_l1(real, fake, 3).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="scales"):
        pyramid_l1(real, fake, 0)


def test_box_l1_is_the_pixel_l1_inside_each_box_only() -> None:
    g = torch.Generator().manual_seed(0)
    real, fake = torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)
    boxes = torch.tensor([[2.0, 1.0, 5.0, 3.0], [0.0, 0.0, 8.0, 8.0]])  # pixel centres x 2.5-4.5, y 1.5-2.5; all
    inside = torch.cat([(real[0, :, 1:3, 2:5] - fake[0, :, 1:3, 2:5]).abs().flatten(),
                        (real[1] - fake[1]).abs().flatten()])
    torch.testing.assert_close(box_l1(real, fake, boxes), inside.mean())
    fake.requires_grad_(True)
    box_l1(real, fake, boxes[:1].repeat(2, 1)).backward()
    assert fake.grad is not None
    assert fake.grad[:, :, 1:3, 2:5].abs().min() > 0 and fake.grad[:, :, 3:].abs().sum() == 0
    assert float(box_l1(real, fake, torch.full((2, 4), -1.0))) == 0.0  # empty boxes: nothing to compare
    with pytest.raises(ValueError, match="boxes"):
        box_l1(real, fake, boxes[:1])


def test_point_l1_is_the_mean_distance_of_matched_points_and_leaves_the_target_alone() -> None:
    predicted = torch.tensor([[[0.0, 0.0], [1.0, -1.0]]], requires_grad=True)  # (1, 2, 2)
    target = torch.tensor([[[0.5, 0.0], [1.0, 0.0]]], requires_grad=True)
    loss = point_l1(predicted, target)
    assert float(loss) == pytest.approx((0.5 + 0 + 0 + 1) / 4)
    loss.backward()
    assert predicted.grad is not None and target.grad is None
    with pytest.raises(ValueError, match="point_l1"):
        point_l1(predicted, target[:, :1])
    weighted = point_l1(predicted.detach(), target, torch.tensor([1.0, 3.0]))  # point 1 counts three times
    assert float(weighted) == pytest.approx((0.5 / 2 * 1 + 1.0 / 2 * 3) / 4)
    assert float(point_l1(predicted.detach(), target, torch.tensor([0.0, 1.0]))) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="weights"):
        point_l1(predicted, target, torch.tensor([0.0, 0.0]))


def test_excess_l1_is_zero_inside_the_limit_and_pulls_back_outside() -> None:
    logits = torch.tensor([0.5, -2.9, 4.0, -7.0], requires_grad=True)
    loss = excess_l1(logits, 3.0)
    assert float(loss) == pytest.approx((1.0 + 4.0) / 4)
    loss.backward()
    assert logits.grad is not None
    assert logits.grad.tolist() == pytest.approx([0.0, 0.0, 0.25, -0.25])  # toward the range, saturated or not
    with pytest.raises(ValueError, match="limit"):
        excess_l1(logits, 0.0)
