"""Set-level metrics (pipelines/metrics/sets.py) on constructed inputs with known answers: Table I's Fréchet
distances against the closed form, Var, the Student-t interval, MDM's diversity and multimodality, smoothness,
landmark distance, image similarity, the lip-sync offset search and the audio energy envelope."""

from __future__ import annotations

import math

import numpy as np
import pytest
import skimage.data

from thpad.pipelines.metrics.sets import (
    PSNR_CAP_DB,
    diversity,
    energy_envelope,
    l1,
    lmd,
    mean_ci,
    multimodality,
    psnr,
    smoothness,
    smoothness_ratio,
    ssim,
    sync_offset,
    table1_row,
    variance,
)


def gaussian_seqs(rng: np.random.Generator, num: int, length: int, dim: int, shift: np.ndarray | float = 0.0,
                  scale: float = 1.0) -> list[np.ndarray]:
    return [rng.normal(size=(length, dim)) * scale + shift for _ in range(num)]


def test_identical_sets_give_zero_distances() -> None:
    seqs = gaussian_seqs(np.random.default_rng(0), 8, 50, 4)
    row = table1_row(seqs, seqs)
    assert row["fid_fm"] == pytest.approx(0.0, abs=1e-8)
    assert row["fid_dfm"] == pytest.approx(0.0, abs=1e-8)
    assert row["snd"] == pytest.approx(0.0, abs=1e-8)
    assert set(row) == {"var", "fid_fm", "fid_dfm", "snd"}


def test_a_shifted_gaussian_gives_the_squared_shift() -> None:
    """Independent N(0, I) and N(mu, I) sets: FD -> |mu|^2; the differences x_{t+1} - x_t of both are N(0, 2I),
    so FID_dfm -> 0 and SND -> |mu|^2. With n = 80000 frames a side, the sample means err by sqrt(2 / n) = 0.005
    per dimension, so the cross term 2 mu . (error) has a standard deviation of 2 |mu| 0.005 = 0.023; the
    covariance terms err by O(d / n). The tolerance is 4 standard deviations."""
    rng = np.random.default_rng(1)
    mu = np.array([1.0, -2.0, 0.5])
    row = table1_row(gaussian_seqs(rng, 40, 2000, 3, shift=mu), gaussian_seqs(rng, 40, 2000, 3))
    assert row["fid_fm"] == pytest.approx(float(mu @ mu), abs=0.1)
    assert row["fid_dfm"] == pytest.approx(0.0, abs=0.01)
    assert row["snd"] == pytest.approx(row["fid_fm"] + row["fid_dfm"])


def test_variance_of_a_known_spread() -> None:
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(5000, 3)) * [1.0, 2.0, 3.0] + 5.0 for _ in range(20)]
    n = 20 * 5000  # a Gaussian's sample variance errs by sigma^2 sqrt(2 / n): here 4 standard deviations of the mean
    assert variance(seqs) == pytest.approx((1 + 4 + 9) / 3, abs=4 * math.sqrt(2 * (1 + 16 + 81) / n) / 3)
    assert table1_row(seqs, seqs)["var"] == variance(seqs)
    exact = [np.array([[0.0], [2.0]]), np.array([[4.0]])]  # pooled 0, 2, 4: variance (4 + 0 + 4) / 3
    assert variance(exact) == pytest.approx(8 / 3)


def test_mean_ci_matches_a_hand_computation() -> None:
    values = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, s = sqrt(5/3), t_{0.975, 3} = 3.182446
    mean, half = mean_ci(values)
    assert mean == 2.5
    assert half == pytest.approx(3.182446305 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert mean_ci(values, level=0.9)[1] == pytest.approx(2.353363435 * math.sqrt(5 / 3) / 2, rel=1e-6)
    assert mean_ci([7.0]) == (7.0, 0.0)
    with pytest.raises(ValueError):
        mean_ci([])


def test_diversity_of_points_on_a_line() -> None:
    rng = np.random.default_rng(3)
    two = np.array([[0.0, 0.0], [3.0, 4.0]])
    assert diversity(two, 50, rng) == pytest.approx(5.0)  # distinct pairs only: always the distance 5
    n, spacing = 10, 2.0
    line = np.stack([np.arange(n) * spacing, np.zeros(n)], axis=1)
    # Over ordered pairs i != j of n points, E|i - j| = (n + 1) / 3.
    assert diversity(line, 20000, rng) == pytest.approx(spacing * (n + 1) / 3, rel=0.02)


def test_multimodality_is_zero_for_identical_samples_and_the_spread_otherwise() -> None:
    rng = np.random.default_rng(4)
    same = [np.repeat(rng.normal(size=(1, 5)), 4, axis=0) for _ in range(3)]
    assert multimodality(same, 20, rng) == 0.0
    pairs = [np.array([[0.0], [1.0]]), np.array([[0.0], [3.0]])]  # within-group distances 1 and 3
    assert multimodality(pairs, 20, rng) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        multimodality([np.zeros((1, 5))], 20, rng)


def test_smoothness_and_its_ratio() -> None:
    ramp = [np.arange(5.0)[:, None] * [3.0, 4.0]]  # steps of length 5
    assert smoothness(ramp) == pytest.approx(25.0)
    seqs = gaussian_seqs(np.random.default_rng(5), 4, 100, 3)
    assert smoothness_ratio(seqs, seqs) == pytest.approx(1.0)
    assert smoothness_ratio([2 * s for s in seqs], seqs) == pytest.approx(4.0)


def test_lmd_in_pixels_and_normalised() -> None:
    b = np.random.default_rng(6).uniform(0, 50, (4, 20, 2))
    a = b + [3.0, 4.0]
    assert lmd(a, b) == pytest.approx(5.0)
    assert lmd(a, b, interocular=10.0) == pytest.approx(0.5)
    assert lmd(a, b, interocular=np.array([5.0, 5.0, 10.0, 10.0])) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        lmd(a[:, :10], b)


def test_image_metrics_of_identical_and_differing_frames() -> None:
    real = np.stack([skimage.data.astronaut()[100:156, 180:236], skimage.data.coffee()[:56, :56]])  # (2, 56, 56, 3)
    assert psnr(real, real) == PSNR_CAP_DB
    assert ssim(real, real) == pytest.approx(1.0)
    assert l1(real, real) == 0.0
    brighter = np.clip(real.astype(np.int16) + 10, 0, 255).astype(np.uint8)
    off = (brighter.astype(np.float64) - real).reshape(2, -1)
    assert l1(brighter, real) == pytest.approx(np.abs(off).mean())
    want = np.mean([10 * math.log10(255**2 / (o**2).mean()) for o in off])
    assert psnr(brighter, real) == pytest.approx(want)
    noisy = np.clip(real + np.random.default_rng(7).normal(0, 25, real.shape), 0, 255).astype(np.uint8)
    assert ssim(noisy, real) < ssim(brighter, real) < 1.0
    with pytest.raises(ValueError):
        psnr(real.astype(np.float32), real)


@pytest.mark.parametrize("lag", [3, -2])
def test_sync_offset_recovers_a_known_shift_and_its_sign(lag: int) -> None:
    rng = np.random.default_rng(8)
    source = np.convolve(rng.normal(size=260), np.ones(4) / 4, mode="same")  # a speech-like envelope
    a = source[10:210]
    b = source[10 - lag:210 - lag] + rng.normal(scale=0.1, size=200)  # b[t] = a[t - lag]: b lags a by `lag`
    shift, r = sync_offset(a, b, max_shift=8)
    assert shift == lag
    assert r > 0.8
    assert sync_offset(a, a, max_shift=8) == (0, pytest.approx(1.0))
    with pytest.raises(ValueError):
        sync_offset(a[:5], b[:5], max_shift=3)


def test_energy_envelope_has_one_rms_per_video_frame() -> None:
    sr, fps = 16000, 25  # 640 samples per frame
    t = np.arange(sr) / sr
    pcm = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 200 * t), 0.0)  # half a second of tone, then silence
    env = energy_envelope(pcm, sr, fps)
    assert env.shape == (25,)
    assert env[:12] == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)  # a sine's RMS
    assert np.all(env[13:] == 0)
    assert energy_envelope(np.concatenate([pcm, np.ones(100)]), sr, fps)[25] == pytest.approx(1.0)  # a partial frame
    assert energy_envelope(pcm, sr, fps, num_frames=30)[25:] == pytest.approx(np.zeros(5))
