"""Figures of the evaluation report: a joint t-SNE of feature sets (real against generated head poses or expression
codes, as TH-PAD's t-SNE of motion, docs/paper-notes.md §1.9), the Table I metrics against the guidance scale s
(§1.8), and per-frame factor timelines of clips; plus an atomic PNG writer.

Figures are built on ``matplotlib.figure.Figure`` directly, never through pyplot, so no global figure state is
kept and any number of figures can be built and dropped in one process (rendering is Agg's, through ``savefig``).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.manifold import TSNE

from thpad.storage.files import atomic_write_bytes

MIN_TSNE_POINTS = 5  # below this t-SNE's perplexity (n - 1) / 3 drops under 1.33: draw a note instead
METRIC_ORDER = ("var", "fid_fm", "fid_dfm", "snd")  # Table I's column order; other metrics follow, sorted
METRIC_LABELS = {"var": "Var", "fid_fm": "FID_fm", "fid_dfm": "FID_Δfm", "snd": "SND"}
GUIDANCE_KEYS = ("s", "metric", "mean", "ci", "space")


def subsample(sets: Mapping[str, np.ndarray], max_points: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The finite rows of each set, cut down in proportion to the sets' sizes when there are more than
    ``max_points`` in all (each set keeps floor(max_points n_i / n) rows, at least one; rows keep their order).

    Args:
        sets: name -> (n_i, d) features, all of one width d.
        max_points: the joint budget.
        rng: the generator choosing the rows (seeded by the caller, so the choice is repeatable).
    Returns:
        name -> (m_i, d) float64.
    """
    widths = {np.asarray(x).shape[1:] for x in sets.values()}
    if len(widths) != 1 or any(np.asarray(x).ndim != 2 for x in sets.values()):
        raise ValueError(f"sets must be (n_i, d) of one width d, got {[np.shape(x) for x in sets.values()]}")
    finite = {k: np.asarray(x, np.float64)[np.isfinite(x).all(axis=1)] for k, x in sets.items()}
    total = sum(len(x) for x in finite.values())
    if total <= max_points:
        return finite
    out = {}
    for name, x in finite.items():
        keep = min(len(x), max(1, max_points * len(x) // total))
        out[name] = x[np.sort(rng.choice(len(x), keep, replace=False))]  # (m_i, d)
    return out


def tsne_embedding(sets: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """A joint 2-D t-SNE of all sets' rows, so that distances between sets mean something.

    Perplexity min(30, (n - 1) / 3) for n rows in all (scikit-learn's default, lowered for small n so each point
    still has about 3 (n - 1) / perplexity neighbours to spread over); PCA initialisation when d >= 2.

    Args:
        sets: name -> (n_i, d) finite features (``subsample``), n >= ``MIN_TSNE_POINTS`` in all.
        seed: t-SNE's random state.
    Returns:
        name -> (n_i, 2) embedded points.
    """
    names = list(sets)
    x = np.concatenate([sets[k] for k in names])  # (n, d)
    if len(x) < MIN_TSNE_POINTS:
        raise ValueError(f"t-SNE needs at least {MIN_TSNE_POINTS} points, got {len(x)}")
    tsne = TSNE(perplexity=min(30.0, (len(x) - 1) / 3), init="pca" if x.shape[1] >= 2 else "random",
                random_state=seed)
    y = tsne.fit_transform(x)  # (n, 2)
    ends = np.cumsum([len(sets[k]) for k in names])[:-1]
    return dict(zip(names, np.split(y, ends), strict=True))


def note_axes(ax: Axes, text: str) -> None:
    """Replace a panel's plot by a centred note (why there is nothing to draw)."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def tsne_figure(sets: Mapping[str, np.ndarray], title: str, seed: int = 0, max_points: int = 2000) -> Figure:
    """A scatter of the joint t-SNE of feature sets, one colour per set (e.g. "real", "diffusion", "AR").

    1. Drop non-finite rows (frames the measurer lost) and subsample to ``max_points`` with a generator seeded
       by ``seed`` (``subsample``).
    2. Embed all rows together (``tsne_embedding``) and draw each set in its colour, with its size in the legend.
    With fewer than ``MIN_TSNE_POINTS`` rows in all, the panel holds a note instead.

    Args:
        sets: name -> (n_i, d) features in one space and comparable units (t-SNE does not rescale them).
        title: the figure's title.
        seed: seeds both the subsample and t-SNE.
        max_points: the most rows embedded (t-SNE's cost grows as n log n, some 10 s for 2000 on 2 cores).
    Returns:
        a Figure with one Axes.
    """
    kept = subsample(sets, max_points, np.random.default_rng(seed))
    fig = Figure(figsize=(6.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    ax.set_title(title)
    total = sum(len(x) for x in kept.values())
    if total < MIN_TSNE_POINTS:
        note_axes(ax, f"too few points for t-SNE ({total} < {MIN_TSNE_POINTS})")
        return fig
    for i, (name, y) in enumerate(tsne_embedding(kept, seed).items()):
        ax.scatter(y[:, 0], y[:, 1], s=8, alpha=0.6, color=f"C{i % 10}", label=f"{name} (n={len(y)})")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", markerscale=2)
    return fig


def metric_order(metrics: Sequence[str]) -> list[str]:
    """The distinct metrics, Table I's first (``METRIC_ORDER``), then the others sorted."""
    present = set(metrics)
    return [m for m in METRIC_ORDER if m in present] + sorted(present - set(METRIC_ORDER))


def guidance_figure(rows: Sequence[Mapping[str, object]], title: str) -> Figure:
    """The metrics against the guidance scale: one panel per metric, one line per space (or variant), points at
    each s with their confidence interval as error bars.

    Args:
        rows: one dict per (s, metric, space) with keys "s" (the guidance scale), "metric" (e.g. "var",
            "fid_fm", "fid_dfm", "snd"), "mean", "ci" (the interval's half width; None or NaN: no bar) and
            "space" (the line's label, e.g. "pose" or "expression"); other keys are ignored.
        title: the figure's title.
    Returns:
        a Figure with one Axes per metric, x labelled "guidance s".
    """
    if not rows:
        raise ValueError("guidance_figure needs at least one row")
    missing = {k for row in rows for k in GUIDANCE_KEYS if k not in row}
    if missing:
        raise ValueError(f"guidance rows lack the keys {sorted(missing)}")
    metrics = metric_order([str(r["metric"]) for r in rows])
    spaces = list(dict.fromkeys(str(r["space"]) for r in rows))  # first-seen order
    fig = Figure(figsize=(3.6 * len(metrics), 3.4), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics, strict=True):
        for i, space in enumerate(spaces):
            points = sorted((float(r["s"]), float(r["mean"]), np.nan if r["ci"] is None else float(r["ci"]))
                            for r in rows if r["metric"] == metric and r["space"] == space)
            if points:
                s, mean, ci = np.array(points).T  # (3, P) -> (P,) each
                ax.errorbar(s, mean, yerr=ci, marker="o", capsize=3, color=f"C{i % 10}", label=space)
        ax.set_title(METRIC_LABELS.get(metric, metric))
        ax.set_xlabel("guidance s")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best")
    return fig


def timeline_figure(curves: Mapping[str, np.ndarray], names: Sequence[str], fps: float, title: str) -> Figure:
    """Per-frame factors of clips over time: one stacked panel per factor (e.g. yaw, pitch, roll, eye closure),
    one line per clip (e.g. "real" and "generated"); NaN frames show as gaps.

    Args:
        curves: label -> (T_i, k) per-frame values, column j the factor ``names[j]``.
        names: the k factor names, the panels' y labels.
        fps: frames per second (frame t is drawn at t / fps seconds).
        title: the figure's title.
    Returns:
        a Figure with k Axes sharing the time axis, the bottom one labelled "time (s)".
    """
    if not names or fps <= 0:
        raise ValueError(f"need at least one factor name and fps > 0, got {list(names)} and {fps}")
    for label, x in curves.items():
        if np.ndim(x) != 2 or np.shape(x)[1] != len(names):
            raise ValueError(f"curve {label!r} is {np.shape(x)}, not (T, {len(names)})")
    fig = Figure(figsize=(8.0, 1.8 * len(names) + 0.8), layout="constrained")
    fig.suptitle(title)
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    for i, (label, x) in enumerate(curves.items()):
        t = np.arange(len(x)) / fps  # (T,)
        for j, ax in enumerate(axes):
            ax.plot(t, np.asarray(x, np.float64)[:, j], color=f"C{i % 10}", linewidth=1.2, label=label)
    for ax, name in zip(axes, names, strict=True):
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    if curves:
        axes[0].legend(loc="upper right")
    return fig


def save_png(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    """Render ``fig`` to PNG (Agg) and write it atomically (``storage.files.atomic_write_bytes``).

    Args:
        fig: the figure.
        path: the .png file (its folder is created).
        dpi: pixels per inch.
    Returns:
        the written path.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(path, buf.getvalue())
