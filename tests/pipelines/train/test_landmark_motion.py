"""L_lmk's column weighting (pipelines/train/landmark_motion.py)."""

import pytest
import torch
from torch import nn

from thpad.pipelines.train.landmark_motion import LandmarkMotionParams, column_weights, landmark_motion_loss


def params(rigid_weight: float) -> LandmarkMotionParams:
    return LandmarkMotionParams(points=(17, 48), min_std=0.25, pretrain_samples=0, pretrain_lr=1e-3,
                                rigid_weight=rigid_weight)


def constant_head(output: torch.Tensor) -> nn.Linear:
    """A head that predicts ``output`` (D,) whatever f_nl is."""
    head = nn.Linear(3, len(output))
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(output)
    return head


def test_rigid_weight_one_is_the_plain_mean_squared_error() -> None:
    p = params(1.0)
    torch.manual_seed(0)
    head, f_nl, target = nn.Linear(3, p.dim), torch.randn(5, 3), torch.randn(5, p.dim)
    expected = ((head(f_nl) - target) ** 2).mean()
    assert torch.allclose(landmark_motion_loss(head, f_nl, target, p), expected)


@pytest.mark.parametrize("column", [0, 3, 4, 65])
def test_rigid_weight_scales_the_error_of_the_rigid_columns_only(column: int) -> None:
    """One unit of error in one column: a rigid column (0-3) costs rigid_weight times a non-rigid one (4-65),
    and the weights keep mean 1, so an error spread over every column costs the same at any rigid_weight."""
    plain, heavy = params(1.0), params(10.0)
    error = torch.zeros(plain.dim)
    error[column] = 1.0
    f_nl, target = torch.zeros(2, 3), torch.zeros(2, plain.dim)
    ratio = landmark_motion_loss(constant_head(error), f_nl, target, heavy) / \
        landmark_motion_loss(constant_head(error), f_nl, target, plain)
    mean_weight = (4 * 10.0 + (plain.dim - 4)) / plain.dim
    assert ratio.item() == pytest.approx((10.0 if column < 4 else 1.0) / mean_weight)
    assert column_weights(heavy).mean().item() == pytest.approx(1.0)
    uniform = constant_head(torch.ones(plain.dim))
    assert landmark_motion_loss(uniform, f_nl, target, heavy).item() == pytest.approx(1.0)


def test_rigid_weight_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rigid_weight > 0"):
        params(0.0)


def closure_params(weight: float) -> LandmarkMotionParams:
    return LandmarkMotionParams(points=(17, 48), min_std=0.25, pretrain_samples=0, pretrain_lr=1e-3,
                                rigid_weight=10.0, closure_weight=weight)


def test_closure_adds_one_column_and_its_own_term() -> None:
    """With closure_weight w the target ends with the eye-closure column, and the loss is the landmark columns'
    weighted mean plus w times the closure column's mean squared error."""
    off, on = closure_params(0.0), closure_params(3.0)
    assert on.dim == off.dim + 1 and on.closure and not off.closure
    torch.manual_seed(0)
    head, f_nl, target = nn.Linear(3, on.dim), torch.randn(6, 3), torch.randn(6, on.dim)
    error = (head(f_nl) - target) ** 2  # (6, D + 1)
    landmarks = (error[:, :-1] * column_weights(on)).mean()
    assert column_weights(on).shape == (off.dim,)
    assert torch.allclose(landmark_motion_loss(head, f_nl, target, on), landmarks + 3.0 * error[:, -1].mean())
    assert torch.allclose(landmark_motion_loss(head, f_nl, target, closure_params(1e-9)), landmarks, atol=1e-6)


def test_closure_weight_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="closure_weight >= 0"):
        closure_params(-1.0)
