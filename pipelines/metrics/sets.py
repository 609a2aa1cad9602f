"""Set-level metrics of generated motion and frames, in plain numpy (issue 21): TH-PAD's Table I (Var, FID_fm,
FID_Δfm, SND; supplement II.2, docs/paper-notes.md §1.8), MDM's diversity and multimodality with a Student-t
confidence interval over sampling seeds (§6), smoothness, landmark distance and image similarity (§8), and the
lip-sync offset between a per-frame mouth signal and the audio's energy envelope.

Sequences are (T_i, N) arrays, one row per frame; frames are (T, S, S, 3) uint8 images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import t as student_t
from skimage.metrics import structural_similarity

from thpad.pipelines.corpus.motion import frame_envelope
from thpad.pipelines.metrics.motion import frames, frechet_distance, velocities
from thpad.pipelines.metrics.probe import pearson

PSNR_CAP_DB = 100.0  # PSNR of identical frames (infinite) is reported as this, so the JSON stays finite


def variance(seqs: Sequence[np.ndarray]) -> float:
    """TH-PAD's Var: the per-channel variance (ddof 0) of all frames of all sequences pooled, averaged over
    channels.

    Args:
        seqs: (T_i, N) sequences.
    Returns:
        the mean over the N channels of their variance.
    """
    return float(frames(seqs).astype(np.float64).var(axis=0).mean())


def table1_row(samples: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> dict[str, float]:
    """One row of TH-PAD's Table I for a set of sampled sequences against the real ones.

    Args:
        samples: (T_i, N) sampled sequences; real: (T_j, N) real sequences (any number, any lengths).
    Returns:
        {"var": Var of the samples, "fid_fm": Fréchet distance of the frames, "fid_dfm": Fréchet distance of the
        frame-to-frame differences, "snd": fid_fm + fid_dfm}.
    """
    fid_fm = frechet_distance(frames(samples), frames(real))
    fid_dfm = frechet_distance(velocities(samples), velocities(real))
    return {"var": variance(samples), "fid_fm": fid_fm, "fid_dfm": fid_dfm, "snd": fid_fm + fid_dfm}


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half width of its Student-t confidence interval (MDM's protocol over sampling seeds).

    Args:
        values: n >= 1 values, e.g. one metric per seed.
        level: the interval's coverage.
    Returns:
        (mean, t_{(1 + level) / 2, n - 1} * s / sqrt(n)) with s the sample standard deviation (ddof 1); the half
        width is 0 for a single value (no spread can be estimated; report n beside it).
    """
    x = np.asarray(values, np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if x.size == 1:
        return float(x[0]), 0.0
    half = student_t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


def distinct_pairs(n: int, pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``pairs`` random index pairs (i, j), i != j, uniform over the ordered pairs of range(n) -> (pairs,) each."""
    if n < 2:
        raise ValueError(f"pairs need at least 2 items, got {n}")
    i = rng.integers(0, n, pairs)
    j = (i + rng.integers(1, n, pairs)) % n  # any index but i, uniformly
    return i, j


def diversity(features: np.ndarray, pairs: int, rng: np.random.Generator) -> float:
    """MDM's Diversity: the mean Euclidean distance of ``pairs`` random pairs of distinct samples drawn across
    all conditions. (MDM pairs two shuffled index lists, which may pair a sample with itself; we never do.)

    Args:
        features: (n, d) one vector per sampled clip (e.g. the clip's mean measured features).
        pairs: number of pairs drawn (MDM: 200).
        rng: the generator of the pairs.
    Returns:
        the mean distance (0 when every sample is the same).
    """
    x = np.asarray(features, np.float64)  # (n, d)
    i, j = distinct_pairs(len(x), pairs, rng)
    return float(np.linalg.norm(x[i] - x[j], axis=1).mean())


def multimodality(groups: Sequence[np.ndarray], pairs: int, rng: np.random.Generator) -> float:
    """MDM's Multimodality: within each condition, the mean distance of ``pairs`` random pairs of distinct
    samples, averaged over the conditions.

    Args:
        groups: (K_c, d) arrays, the K_c >= 2 samples of one condition (e.g. one audio clip) each.
        pairs: pairs drawn per condition (MDM: 20).
        rng: the generator of the pairs.
    Returns:
        the mean over conditions (0 when each condition's samples are identical).
    """
    means = []
    for g in groups:
        x = np.asarray(g, np.float64)  # (K, d)
        i, j = distinct_pairs(len(x), pairs, rng)
        means.append(np.linalg.norm(x[i] - x[j], axis=1).mean())
    return float(np.mean(means))


def smoothness(seqs: Sequence[np.ndarray]) -> float:
    """Mean squared frame-to-frame change: ||x_{t+1} - x_t||^2 averaged over every step of every sequence."""
    return float((velocities(seqs).astype(np.float64) ** 2).sum(axis=1).mean())


def smoothness_ratio(samples: Sequence[np.ndarray], real: Sequence[np.ndarray]) -> float:
    """``smoothness`` of the samples over that of the real sequences (1: as smooth; above 1: they chatter)."""
    return smoothness(samples) / smoothness(real)


def lmd(a: np.ndarray, b: np.ndarray, interocular: np.ndarray | float | None = None) -> float:
    """Landmark distance: the mean Euclidean distance between corresponding points.

    Args:
        a, b: (T, K, 2) landmark sets (e.g. the mouth's 20 points of generated and real frames).
        interocular: None for pixels, or b's inter-ocular distance, a scalar or per frame (T,), to divide each
            frame's distances by (NME-style).
    Returns:
        the mean over frames and points.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 2:
        raise ValueError(f"need two (T, K, 2) landmark sets of one shape, got {a.shape} and {b.shape}")
    dist = np.linalg.norm(a - b, axis=2)  # (T, K)
    if interocular is not None:
        dist = dist / np.broadcast_to(np.asarray(interocular, np.float64), (len(dist),))[:, None]
    return float(dist.mean())


def _check_frames(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 4 or a.shape[3] != 3 or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"need two (T, S, S, 3) uint8 frame sets of one shape, got {a.shape} {a.dtype} "
                         f"and {b.shape} {b.dtype}")


def psnr(frames_a: np.ndarray, frames_b: np.ndarray) -> float:
    """Per-frame PSNR in dB (peak 255) averaged over frames; an identical frame counts as ``PSNR_CAP_DB``.

    Args:
        frames_a, frames_b: (T, S, S, 3) uint8, e.g. generated and real frames.
    """
    _check_frames(frames_a, frames_b)
    diff = frames_a.astype(np.float64) - frames_b.astype(np.float64)
    mse = (diff**2).reshape(len(diff), -1).mean(axis=1)  # (T,)
    floor = 255.0**2 * 10 ** (-PSNR_CAP_DB / 10)  # the MSE at which PSNR reaches the cap
    return float((10 * np.log10(255.0**2 / np.maximum(mse, floor))).mean())


def ssim(frames_a: np.ndarray, frames_b: np.ndarray) -> float:
    """Per-frame SSIM (scikit-image, 7 px window, colour channels averaged, data range 255) averaged over
    frames; 1 for identical frames.

    Args:
        frames_a, frames_b: (T, S, S, 3) uint8.
    """
    _check_frames(frames_a, frames_b)
    return float(np.mean([structural_similarity(a, b, channel_axis=-1, data_range=255)
                          for a, b in zip(frames_a, frames_b, strict=True)]))


def l1(frames_a: np.ndarray, frames_b: np.ndarray) -> float:
    """Mean absolute difference in grey levels (0-255) over all pixels, channels and frames.

    Args:
        frames_a, frames_b: (T, S, S, 3) uint8.
    """
    _check_frames(frames_a, frames_b)
    return float(np.abs(frames_a.astype(np.float64) - frames_b.astype(np.float64)).mean())


def sync_offset(signal_a: np.ndarray, signal_b: np.ndarray, max_shift: int) -> tuple[int, float]:
    """The shift in frames that best lines up two per-frame signals, by Pearson r over their overlap.

    Shift s pairs a[t] with b[t + s]: a positive best shift means b lags a by s frames (with a the audio's
    energy envelope and b the mouth opening, the mouth moves s frames after the sound). Ties go to the smaller
    |s|.

    Args:
        signal_a, signal_b: (T,) signals of the same frames.
        max_shift: shifts -max_shift..max_shift are tried (each must leave at least 3 frames of overlap).
    Returns:
        (best shift, r at that shift).
    """
    a, b = np.asarray(signal_a, np.float64).ravel(), np.asarray(signal_b, np.float64).ravel()
    if a.shape != b.shape or len(a) - max_shift < 3:
        raise ValueError(f"signals of {len(a)} and {len(b)} frames cannot be shifted by up to {max_shift}")
    best = (0, -math.inf)
    for s in sorted(range(-max_shift, max_shift + 1), key=abs):
        r = pearson(a[max(0, -s):len(a) - max(0, s)], b[max(0, s):len(b) - max(0, -s)])
        if r > best[1]:
            best = (s, r)
    return best


def energy_envelope(pcm: np.ndarray, sample_rate: int, fps: int, num_frames: int | None = None) -> np.ndarray:
    """RMS of the audio samples of each video frame (frame t: samples [t sr / fps, (t + 1) sr / fps)).

    Args:
        pcm: (N,) mono samples.
        sample_rate: samples per second; fps: video frames per second.
        num_frames: frames T to cover; None: ceil(N fps / sample_rate), the last frame taking what is left.
    Returns:
        (T,) float32; frames past the audio's end are 0. The sample corpus's own envelope
        (``corpus.motion.frame_envelope``) does the work, so the two cannot drift apart.
    """
    if num_frames is None:
        num_frames = -(-len(pcm) * fps // sample_rate)  # ceil, in integers
    return frame_envelope(np.asarray(pcm, np.float64), sample_rate, fps, num_frames)
