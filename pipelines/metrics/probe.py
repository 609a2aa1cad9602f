"""A linear probe of what a feature encodes: cross-validated ridge regression of per-frame targets, scored by the
Pearson correlation between prediction and truth on held-out clips.

``train_disentangle`` uses it on the sample corpus, whose clips carry their true per-frame motion (yaw,
pitch, roll, blink): the non-lip feature f_nl should track pose and blink, the lip feature f_l should not.
Folds are whole clips, so a probe cannot score by recognising a clip it was fitted on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def clip_folds(groups: np.ndarray, num_folds: int) -> np.ndarray:
    """The fold of every row: groups (clips) in order of first appearance go to folds 0, 1, ..., 0, 1, ...

    Args:
        groups: (N,) group label per row.
    Returns:
        (N,) int fold index; all rows of a group share one fold.
    Raises:
        ValueError: fewer groups than folds.
    """
    labels, first = np.unique(groups, return_index=True)
    if labels.size < num_folds:
        raise ValueError(f"{labels.size} clips cannot fill {num_folds} folds")
    order = labels[np.argsort(first)]
    fold_of = {label: i % num_folds for i, label in enumerate(order.tolist())}
    return np.array([fold_of[g] for g in groups.tolist()], dtype=np.int64)


def probe_groups(clips: np.ndarray, frames: np.ndarray, num_folds: int) -> np.ndarray:
    """The unit of the probe's split: the clip, or, with fewer clips than folds (a tiny val set), contiguous
    blocks of ``num_folds`` per clip in frame order (held out in time instead of by clip).

    Args:
        clips: (N,) clip index of every row; frames: (N,) frame number of every row.
    Returns:
        (N,) int group labels for ``clip_folds``.
    """
    clips, frames = np.asarray(clips), np.asarray(frames)
    if np.unique(clips).size >= num_folds:
        return clips.astype(np.int64)
    groups = np.zeros(len(clips), np.int64)
    for c in np.unique(clips):
        rows = np.flatnonzero(clips == c)
        rank = np.argsort(np.argsort(frames[rows], kind="stable"), kind="stable")  # (n,) order in time
        groups[rows] = int(c) * num_folds + rank * num_folds // len(rows)
    return groups


def ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, alpha: float) -> np.ndarray:
    """Fit ridge regression on standardised features (train statistics) and predict the test rows.

    Args:
        x_train: (N, D) features; y_train: (N, T) targets; x_test: (M, D).
        alpha: the L2 penalty, relative to N (so its effect does not shrink with more rows).
    Returns:
        (M, T) predictions.
    """
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-8  # (D,), (D,)
    a, b = (x_train - mean) / std, (x_test - mean) / std  # (N, D), (M, D)
    y_mean = y_train.mean(axis=0)  # (T,)
    gram = a.T @ a + alpha * len(a) * np.eye(a.shape[1])  # (D, D)
    weights = np.linalg.solve(gram, a.T @ (y_train - y_mean))  # (D, T)
    return b @ weights + y_mean  # (M, T)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two (N,) arrays; 0 when either is constant."""
    a, b = a - a.mean(), b - b.mean()
    denom = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def center_groups(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``x`` (N, ...) with each group's mean subtracted from its rows."""
    out = np.array(x, np.float64)
    for g in np.unique(groups):
        out[groups == g] -= out[groups == g].mean(axis=0)
    return out


def probe_predictions(features: np.ndarray, targets: Mapping[str, np.ndarray], groups: np.ndarray,
                      num_folds: int = 2, alpha: float = 1.0,
                      within_groups: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Cross-validated linear probe: for each fold, fit on the other folds and predict this one.

    Args:
        features: (N, D) one feature vector per frame.
        targets: name -> (N,) true value per frame (the columns of the outputs, in this order).
        groups: (N,) clip of every frame (the unit of the split).
        num_folds: folds of clips (2: fit on half of the clips, test on the other half, and back).
        alpha: ridge penalty (see ``ridge_predict``).
        within_groups: subtract each clip's mean from features and targets first, so the probe scores how a
            feature follows the motion within a clip and per-clip offsets (identity, mean pose) do not count.
    Returns:
        (N, T) pooled held-out predictions and (N, T) truth (clip-centred when ``within_groups``).
    """
    groups = np.asarray(groups)
    y = np.stack([np.asarray(targets[n], np.float64) for n in targets], axis=1)  # (N, T)
    x = np.asarray(features, np.float64)  # (N, D)
    if x.ndim != 2 or len(x) != len(y) or len(groups) != len(y):
        raise ValueError(f"features {x.shape}, targets {y.shape} and groups {len(groups)} do not match")
    if within_groups:
        x, y = center_groups(x, groups), center_groups(y, groups)
    folds = clip_folds(groups, num_folds)
    pred = np.zeros_like(y)  # (N, T)
    for k in range(num_folds):
        test = folds == k
        pred[test] = ridge_predict(x[~test], y[~test], x[test], alpha)
    return pred, y


def probe_correlations(features: np.ndarray, targets: Mapping[str, np.ndarray], groups: np.ndarray,
                       num_folds: int = 2, alpha: float = 1.0, within_groups: bool = False) -> dict[str, float]:
    """The Pearson correlation of ``probe_predictions`` with the truth, per target (name -> r in [-1, 1]; 0 for
    a constant prediction or truth)."""
    pred, y = probe_predictions(features, targets, groups, num_folds, alpha, within_groups)  # (N, T) each
    return {n: pearson(pred[:, i], y[:, i]) for i, n in enumerate(targets)}


def partial_out(values: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``values`` (N,) minus its least-squares fit, with an intercept, on the columns of ``others`` (N, K)."""
    design = np.concatenate([np.ones((len(values), 1)), others], axis=1)  # (N, 1 + K)
    coef = np.linalg.lstsq(design, values, rcond=None)[0]  # (1 + K,)
    return values - design @ coef  # (N,)


def partial_correlations(pred: np.ndarray, truth: np.ndarray, names: list[str]) -> dict[str, float]:
    """Per target, the correlation of prediction and truth after both lose what the other targets' truth
    explains linearly. Pose paths that move together within a clip let a feature that knows one of them
    score on the others in ``probe_correlations``; here it does not.

    Args:
        pred, truth: (N, T) from ``probe_predictions``; names: the T target names in column order.
    Returns:
        name -> partial r in [-1, 1] (the plain r when there is one target).
    """
    out = {}
    for i, name in enumerate(names):
        others = np.delete(truth, i, axis=1)  # (N, T - 1)
        out[name] = pearson(partial_out(pred[:, i], others), partial_out(truth[:, i], others))
    return out
