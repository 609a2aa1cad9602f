"""The motion priors' validation figure: sampled non-lip trajectories against the truth, on the truth's principal
components."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from thpad.pipelines.metrics.motion import frames


def principal_axes(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean (N,), the first ``k`` principal axes (k, N) and their explained variance ratios (k,) of (F, N)."""
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = min(k, vt.shape[0])
    return mean, vt[:k], (s[:k] ** 2) / max(float((s**2).sum()), 1e-12)


def trajectory_figure(truth: Sequence[np.ndarray], curves: Mapping[str, Sequence[np.ndarray]],
                      names: Sequence[str], components: int, title: str) -> Figure:
    """Sampled trajectories against the truth over time: one row per clip, one column per principal
    component of the true features (pooled over the clips shown).

    Args:
        truth: (T_i, N) true sequences; curves: label -> sequences aligned with ``truth``; names: row labels.
    """
    mean, axes, ratio = principal_axes(frames(truth), components)
    fig = Figure(figsize=(3.4 * len(axes), 1.9 * len(truth) + 0.8), dpi=100, layout="constrained")
    grid = fig.subplots(len(truth), len(axes), squeeze=False, sharex="row")
    for row, true in enumerate(truth):
        for col, axis in enumerate(axes):
            ax = grid[row, col]
            ax.plot((true - mean) @ axis, color="black", linewidth=2.0, label="truth")
            for label, seqs in curves.items():
                ax.plot((seqs[row] - mean) @ axis, linewidth=1.0, label=label)
            if row == 0:
                ax.set_title(f"PC {col + 1} ({100 * ratio[col]:.0f}% var)")
            if col == 0:
                ax.set_ylabel(names[row], fontsize=7)
            if row == len(truth) - 1:
                ax.set_xlabel("frame")
    handles, labels = grid[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    fig.suptitle(title)
    return fig
