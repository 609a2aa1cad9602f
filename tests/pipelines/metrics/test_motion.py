"""The priors' validation measures (pipelines/train/prior_eval.py): Fréchet distances against closed forms
and an independent matrix square root, the speed-correlation gesture measure, and the trajectory figure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm

from thpad.pipelines.metrics.motion import (
    frames,
    frechet_distance,
    motion_metrics,
    speed,
    speed_correlation,
    velocities,
)
from thpad.pipelines.train.prior.figure import principal_axes, trajectory_figure


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift() -> None:
    x = np.random.default_rng(0).normal(size=(500, 5))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(x, x + 2.0) == pytest.approx(5 * 4.0, rel=1e-6)  # ||shift||^2, same covariance
    assert frechet_distance(x, x + 2.0) > frechet_distance(x, x + 1.0) > 0.0


def test_frechet_distance_matches_the_closed_form_in_one_dimension() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 2.0, (400, 1)), rng.normal(-0.5, 0.5, (300, 1))
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    assert frechet_distance(a, b) == pytest.approx((a.mean() - b.mean()) ** 2 + (sa - sb) ** 2, rel=1e-9)


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 4)) @ rng.normal(size=(4, 4))
    b = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4)) + 0.3
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * np.real(sqrtm(ca @ cb)))
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_refuses_mismatched_sets() -> None:
    with pytest.raises(ValueError, match="same width"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))


def test_frames_and_velocities_pool_the_sequences() -> None:
    seqs = [np.arange(12.0).reshape(4, 3), np.ones((2, 3))]
    assert frames(seqs).shape == (6, 3)
    np.testing.assert_array_equal(velocities(seqs), np.array([[3.0] * 3] * 3 + [[0.0] * 3]))


def test_speed_of_a_ramp_is_its_slope() -> None:
    ramp = np.outer(np.arange(40.0), [3.0, 4.0])  # (40, 2), slope norm 5
    np.testing.assert_allclose(speed(ramp, smoothing=0), 5.0)
    inside = speed(ramp, smoothing=2.0)[10:-10]  # a Gaussian keeps a line, away from the clamped ends
    np.testing.assert_allclose(inside, 5.0, rtol=1e-6)
    np.testing.assert_allclose(speed(np.ones((10, 3))), 0.0)


def test_speed_correlation_is_one_for_the_same_speeds_and_minus_one_reversed() -> None:
    rng = np.random.default_rng(3)
    seqs = [np.cumsum(rng.normal(size=(60, 4)) * rng.uniform(0.1, 2.0, (60, 1)), axis=0) for _ in range(3)]
    speeds = [speed(s) for s in seqs]
    assert speed_correlation(seqs, speeds) == pytest.approx(1.0)
    assert speed_correlation(seqs, [-s for s in speeds]) == pytest.approx(-1.0)
    unrelated = [rng.normal(size=60) for _ in range(3)]
    assert abs(speed_correlation(seqs, unrelated)) < 0.3
    assert np.isnan(speed_correlation(seqs, [np.ones(60)] * 3))
    with pytest.raises(ValueError, match="frames"):
        speed_correlation(seqs, [np.ones(59)] * 3)


def test_speed_correlation_sees_motion_that_follows_speech() -> None:
    rng = np.random.default_rng(4)
    speaking = [(np.arange(100) // 20) % 2 for _ in range(4)]  # 20 frames on, 20 off
    moving = [np.cumsum(rng.normal(size=(100, 3)) * (0.1 + s[:, None]), axis=0) for s in speaking]
    still = [np.cumsum(rng.normal(size=(100, 3)), axis=0) for _ in speaking]
    assert speed_correlation(moving, speaking) > 0.5
    assert abs(speed_correlation(still, speaking)) < 0.3


def test_motion_metrics_keys() -> None:
    rng = np.random.default_rng(5)
    truth = [rng.normal(size=(30, 4)) for _ in range(3)]
    found = motion_metrics(truth, truth, [np.arange(30) % 2 for _ in truth])
    assert set(found) == {"fd", "fd_vel", "speed_corr", "gesture"}
    assert found["fd"] == pytest.approx(0.0, abs=1e-8) and found["speed_corr"] == pytest.approx(1.0)
    assert set(motion_metrics(truth, truth, None)) == {"fd", "fd_vel", "speed_corr"}


def test_trajectory_figure_draws_every_clip_and_component() -> None:
    rng = np.random.default_rng(6)
    truth = [np.cumsum(rng.normal(size=(40, 6)), axis=0) for _ in range(2)]
    curves = {"s=2.5, seed 0": [t + 0.1 for t in truth], "s=0, seed 0": [t[::-1] for t in truth]}
    fig = trajectory_figure(truth, curves, ["a", "b"], components=3, title="test")
    assert len(fig.axes) == 6
    assert all(len(ax.lines) == 3 for ax in fig.axes)
    _, axes, ratio = principal_axes(frames(truth), 3)
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-9)
    assert np.all(np.diff(ratio) <= 0) and ratio.sum() <= 1.0
