"""The report's figures (pipelines/evaluate/figures.py): axes and labels of each builder, PNG output, the joint
t-SNE separating two distinct blobs, tiny sets drawn as a note, and deterministic subsampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from thpad.pipelines.evaluate.figures import (
    guidance_figure,
    save_png,
    subsample,
    timeline_figure,
    tsne_figure,
)


def blobs(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Two Gaussian blobs (n, 4), unit spread, 20 apart."""
    rng = np.random.default_rng(seed)
    return {"real": rng.normal(size=(n, 4)), "diffusion": rng.normal(size=(n, 4)) + 20 / 2}


def scatter_points(fig: Figure) -> dict[str, np.ndarray]:
    """The drawn points of each set, keyed by the legend label's name (before " (n=...)")."""
    ax = fig.axes[0]
    return {c.get_label().split(" (")[0]: np.asarray(c.get_offsets()) for c in ax.collections}


# --- t-SNE ----------------------------------------------------------------------------------------------------


def test_tsne_separates_two_blobs() -> None:
    fig = tsne_figure(blobs(60), "poses", seed=0)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() == "poses" and ax.get_xlabel() == "t-SNE 1"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real (n=60)", "diffusion (n=60)"]
    pts = scatter_points(fig)
    a, b = pts["real"], pts["diffusion"]  # (60, 2) each
    gap = np.linalg.norm(a.mean(axis=0) - b.mean(axis=0))
    spread = max(np.linalg.norm(x - x.mean(axis=0), axis=1).mean() for x in (a, b))
    assert gap > 2 * spread


def test_tsne_is_seeded() -> None:
    a, b = (scatter_points(tsne_figure(blobs(20), "t", seed=3)) for _ in range(2))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-4)


def test_tsne_subsamples_to_max_points_and_drops_nans() -> None:
    sets = blobs(300)
    sets["real"][:10] = np.nan
    fig = tsne_figure(sets, "t", max_points=100)
    sizes = {k: len(v) for k, v in scatter_points(fig).items()}
    assert sizes == {"real": 49, "diffusion": 50}  # 100 * 290 // 590 and 100 * 300 // 590
    assert not any(np.isnan(v).any() for v in scatter_points(fig).values())


def test_subsample_is_deterministic_and_keeps_order() -> None:
    sets = {"a": np.arange(100.0)[:, None], "b": np.arange(10.0)[:, None]}  # (100, 1), (10, 1)
    x = subsample(sets, 22, np.random.default_rng(1))
    y = subsample(sets, 22, np.random.default_rng(1))
    assert {k: len(v) for k, v in x.items()} == {"a": 20, "b": 2}
    for k in x:
        np.testing.assert_array_equal(x[k], y[k])
        assert (np.diff(x[k][:, 0]) > 0).all()
    assert subsample(sets, 1000, np.random.default_rng(0))["a"].shape == (100, 1)  # under budget: all kept


def test_subsample_rejects_mixed_widths() -> None:
    with pytest.raises(ValueError, match="one width"):
        subsample({"a": np.zeros((3, 2)), "b": np.zeros((3, 3))}, 10, np.random.default_rng(0))


def test_tiny_sets_draw_a_note() -> None:
    fig = tsne_figure({"real": np.zeros((2, 3)), "AR": np.zeros((2, 3))}, "tiny")
    ax = fig.axes[0]
    assert not ax.collections and "too few points" in ax.texts[0].get_text()


def test_tsne_of_one_dimensional_features() -> None:
    rng = np.random.default_rng(0)
    fig = tsne_figure({"a": rng.normal(size=(8, 1)), "b": rng.normal(size=(8, 1)) + 5}, "1-D")
    assert sum(len(v) for v in scatter_points(fig).values()) == 16


# --- guidance and timelines -----------------------------------------------------------------------------------


def guidance_rows() -> list[dict]:
    rows = []
    for space, shift in (("pose", 0.0), ("expression", 1.0)):
        for s in (3.0, 1.0, 2.0):  # out of order on purpose
            for metric in ("snd", "var", "fid_dfm", "fid_fm"):
                rows.append({"s": s, "metric": metric, "mean": s + shift, "ci": None if s == 2.0 else 0.1,
                             "space": space, "title": "ignored"})
    return rows


def test_guidance_figure_panels_and_lines() -> None:
    fig = guidance_figure(guidance_rows(), "Guidance sweep")
    assert len(fig.axes) == 4
    assert [ax.get_title() for ax in fig.axes] == ["Var", "FID_fm", "FID_Δfm", "SND"]
    assert all(ax.get_xlabel() == "guidance s" for ax in fig.axes)
    assert fig.get_suptitle() == "Guidance sweep"
    # errorbar labels its container; the container's first line is the data line
    data = {c.get_label(): c.lines[0].get_xydata() for c in fig.axes[0].containers}
    np.testing.assert_array_equal(data["pose"], [[1, 1], [2, 2], [3, 3]])  # sorted by s
    np.testing.assert_array_equal(data["expression"], [[1, 2], [2, 3], [3, 4]])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["pose", "expression"]


def test_guidance_figure_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        guidance_figure([], "t")
    with pytest.raises(ValueError, match="'ci'"):
        guidance_figure([{"s": 1.0, "metric": "var", "mean": 1.0, "space": "pose"}], "t")


def test_timeline_figure_panels() -> None:
    names = ["yaw", "pitch", "roll", "eye closure"]
    real = np.zeros((50, 4))
    real[10] = np.nan  # a lost frame
    fig = timeline_figure({"real": real, "generated": np.ones((40, 4))}, names, fps=25, title="clip 0")
    assert len(fig.axes) == 4
    assert [ax.get_ylabel() for ax in fig.axes] == names
    assert fig.axes[-1].get_xlabel() == "time (s)" and fig.get_suptitle() == "clip 0"
    real_line, generated_line = fig.axes[0].get_lines()
    assert real_line.get_xdata()[-1] == pytest.approx(49 / 25) and len(generated_line.get_xdata()) == 40
    with pytest.raises(ValueError, match="not \\(T, 4\\)"):
        timeline_figure({"bad": np.zeros((5, 3))}, names, fps=25, title="t")


# --- PNG ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [
    lambda: tsne_figure({"a": np.zeros((2, 2))}, "note"),
    lambda: guidance_figure(guidance_rows(), "g"),
    lambda: timeline_figure({"c": np.zeros((10, 2))}, ["yaw", "pitch"], fps=25, title="t"),
])
def test_save_png_writes_a_valid_png(tmp_path: Path, build) -> None:
    path = save_png(build(), tmp_path / "figs" / "f.png", dpi=50)
    assert [p.name for p in path.parent.iterdir()] == ["f.png"]  # no temporary left
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 50 and img.size[1] > 50
