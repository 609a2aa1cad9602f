"""Validation measures of the motion priors, in plain numpy: Fréchet distances of per-frame features and of
their velocities (TH-PAD's FID_fm / FID_Δfm, docs/paper-notes.md §1.8, here on the non-lip features f_nl instead of
3DMM coefficients), an audio-tied gesture measure, and the trajectory figure.

The gesture measure. The sample corpus ties head motion to speech: the head's velocity is scaled by speech
activity (still in pauses) and nods fall on stressed peaks (pipelines/corpus/motion.py). So the speed of the
non-lip features, ||d f_nl / dt|| per frame, rises and falls with speech. We take the rank (Spearman)
correlation, pooled over all frames of all val clips, between a sequence's speed and a reference per-frame
signal: ``gesture`` uses the truth's ``speaking`` channel (0/1), ``speed_corr`` the true features' own speed.
The sequence is Gaussian-smoothed over ``SPEED_SMOOTHING`` frames before differencing, which removes the
frame-to-frame jitter of the features but keeps head motion; ranks, not values, are correlated, because the
fast blinks (more frequent in pauses) give rare, very large speeds that would dominate a Pearson correlation.
The true features' ``gesture`` is the ceiling (how much of the coupling f_nl carries); an audio-blind sampler
scores about 0 on both. Real data has no ``speaking`` truth: only ``speed_corr`` is measured there.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.stats import rankdata

SPEED_SMOOTHING = 2.0  # Gaussian sigma, in frames (80 ms at 25 fps)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to the rows of ``a`` (n, d) and ``b`` (m, d):
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

    Tr (S_a S_b)^(1/2) is computed as the trace of (S_a^(1/2) S_b S_a^(1/2))^(1/2), a symmetric PSD matrix,
    so the result is real without the complex square root pytorch-fid needs.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (n >= 2, d) sets of the same width, got {a.shape} and {b.shape}")
    a, b = a.astype(np.float64), b.astype(np.float64)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))  # (d, d)
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))  # (d, d)
    root_a = psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)  # (d,)
    tr_cross = float(np.sqrt(np.clip(cross, 0.0, None)).sum())
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    return max(mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * tr_cross, 0.0)


def psd_sqrt(c: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (negative rounding errors clipped to 0)."""
    w, v = np.linalg.eigh(c)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frames(seqs: Sequence[np.ndarray]) -> np.ndarray:
    """All frames of the sequences, (sum T_i, N)."""
    return np.concatenate([np.asarray(s) for s in seqs])


def velocities(seqs: Sequence[np.ndarray]) -> np.ndarray:
    """All frame-to-frame differences x_{t+1} - x_t of the sequences, (sum (T_i - 1), N)."""
    return np.concatenate([np.diff(np.asarray(s), axis=0) for s in seqs])


def speed(seq: np.ndarray, smoothing: float = SPEED_SMOOTHING) -> np.ndarray:
    """Per-frame speed ||d x / dt|| (T,) of a (T, N) sequence smoothed over time with a Gaussian of
    ``smoothing`` frames (0: none); central differences, one-sided at the ends."""
    if len(seq) < 2:
        raise ValueError(f"a speed needs at least 2 frames, got {len(seq)}")
    x = np.asarray(seq, np.float64)  # (T, N)
    if smoothing > 0:
        x = gaussian_filter1d(x, smoothing, axis=0, mode="nearest")  # (T, N)
    return np.linalg.norm(np.gradient(x, axis=0), axis=1)  # (T,)


def speed_correlation(seqs: Sequence[np.ndarray], refs: Sequence[np.ndarray],
                      smoothing: float = SPEED_SMOOTHING) -> float:
    """Spearman rank correlation, pooled over every frame, between each sequence's speed and its reference.

    Args:
        seqs: (T_i, N) sequences; refs: (T_i,) per-frame signals, ``refs[i]`` aligned with ``seqs[i]``.
    Returns:
        the correlation in [-1, 1] (ties get average ranks), NaN when either side is constant.
    """
    if len(seqs) != len(refs):
        raise ValueError(f"{len(seqs)} sequences but {len(refs)} reference signals")
    x = np.concatenate([speed(s, smoothing) for s in seqs])
    y = np.concatenate([np.asarray(r, np.float64).reshape(-1) for r in refs])
    if x.shape != y.shape:
        raise ValueError(f"sequences of {x.shape[0]} frames in all against references of {y.shape[0]}")
    x, y = rankdata(x), rankdata(y)
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x**2).sum() * (y**2).sum()))
    return float((x * y).sum() / denom) if denom > 0 else float("nan")


def motion_metrics(samples: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                   speaking: Sequence[np.ndarray] | None) -> dict[str, float]:
    """``fd``, ``fd_vel`` and ``speed_corr`` of samples against the true sequences (``samples[i]`` sampled
    for the audio of ``truth[i]``), and ``gesture`` when the speaking truth is known."""
    metrics = {"fd": frechet_distance(frames(samples), frames(truth)),
               "fd_vel": frechet_distance(velocities(samples), velocities(truth)),
               "speed_corr": speed_correlation(samples, [speed(t) for t in truth])}
    if speaking is not None:
        metrics["gesture"] = speed_correlation(samples, speaking)
    return metrics
