"""The DVC metrics and plots files of the training stages, which let ``dvc metrics show/diff``, ``dvc plots show``
and ``dvc exp show`` compare runs (MLflow keeps the same figures per run; a resumed stage splits them over runs).

Layout, under ``paths.metrics`` and ``paths.plots`` (local folders in the repository, kept in git):

- ``{metrics}/{stage}.json``: the final figures as nested JSON, from flat MLflow names (``val/probe_nl/yaw`` ->
  ``{"val": {"probe_nl": {"yaw": ...}}}``, which DVC shows as ``val.probe_nl.yaw``). Finite numbers or null.
- ``{plots}/{stage}/loss.csv`` and ``val.csv``: one row per logged point, ordered by step, one step once;
  columns ``step``, ``samples`` and then one per figure (its MLflow name); an empty cell where a figure was not
  logged or was not finite.

Every file is written atomically (a temporary sibling, then a rename).
"""

from __future__ import annotations

import csv
import io
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from thpad.storage.files import atomic_write_bytes, atomic_write_json

STEP, SAMPLES = "step", "samples"  # the index columns of every plot, and two keys of every metrics file
TRAIN, VAL = "train", "val"  # the kinds of rows of a run's history: loss terms per log tick, validations
LOSS_PLOT, VAL_PLOT = "loss.csv", "val.csv"
SEPARATOR = "/"  # of MLflow's metric names

Row = Mapping[str, Any]
Rename = Callable[[Mapping[str, Any]], dict[str, Any]]


def metrics_path(root: str | Path, stage: str) -> Path:
    """``root/{stage}.json``: the stage's DVC metrics file."""
    return Path(root) / f"{stage}.json"


def plot_path(root: str | Path, stage: str, name: str) -> Path:
    """``root/{stage}/{name}``: one of the stage's DVC plots files (``LOSS_PLOT``, ``VAL_PLOT``)."""
    return Path(root) / stage / name


def finite(value: Any) -> int | float | None:
    """``value`` as a JSON-safe number: an int stays an int, a float (numpy's too) becomes a float, and NaN,
    infinities and None become None. Anything else raises ``TypeError``."""
    if value is None:
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value) if math.isfinite(value) else None
    raise TypeError(f"not a number: {value!r}")


def nest(flat: Mapping[str, Any], separator: str = SEPARATOR) -> dict[str, Any]:
    """Flat names to nested dicts, values made JSON-safe (``finite``): ``{"val/probe_nl/yaw": 0.5}`` ->
    ``{"val": {"probe_nl": {"yaw": 0.5}}}``.

    Raises:
        ValueError: a name has an empty part, or is both a figure and a group (``val/a`` beside ``val/a/b``).
    """
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *groups, leaf = name.split(separator)
        if not all((*groups, leaf)):
            raise ValueError(f"metric name {name!r} has an empty part")
        node = tree
        for depth, group in enumerate(groups):
            node = node.setdefault(group, {})
            if not isinstance(node, dict):
                raise ValueError(f"{separator.join(groups[:depth + 1])!r} is a figure and a group ({name!r})")
        if isinstance(node.get(leaf), dict):
            raise ValueError(f"{name!r} is a figure and a group")
        node[leaf] = finite(value)
    return tree


def unique_steps(rows: Sequence[Row]) -> list[Row]:
    """``rows`` ordered by ``step``, keeping the last row of each step (a re-logged step replaces the older)."""
    return sorted({row[STEP]: row for row in rows}.values(), key=lambda row: row[STEP])


def _cell(value: Any) -> str:
    """A CSV cell: ints as ints, floats at full precision (``repr``), "" for missing or non-finite values."""
    number = finite(value)
    return "" if number is None else repr(number)


def write_metrics_json(path: str | Path, flat: Mapping[str, Any]) -> Path:
    """Write flat metrics (MLflow names) to ``path`` as nested JSON (``nest``), atomically."""
    return atomic_write_json(path, nest(flat))


def write_rows_csv(path: str | Path, rows: Sequence[Row]) -> Path:
    """Write rows (``step``, ``samples`` and figures) to ``path`` as CSV, atomically: ordered by step, one row per
    step (``unique_steps``), columns ``step``, ``samples`` and then the figures in the order they first appear."""
    rows = unique_steps(rows)
    columns = list(dict.fromkeys([STEP, SAMPLES, *(name for row in rows for name in row)]))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(name)) for name in columns] for row in rows)
    return atomic_write_bytes(path, text.getvalue().encode())


def stage_metrics(final: Mapping[str, Any], history: Mapping[str, Sequence[Row]],
                  rename: Rename | None = None) -> dict[str, Any]:
    """The flat figures of a training stage's metrics file.

    Args:
        final: the figures the run reported with its last checkpoint: ``step``, ``cur_nsamples`` and the final
            validation's figures (MLflow names, e.g. ``val/recon_l1``).
        history: the run's rows by kind (``TRAIN``, ``VAL``); the last ``TRAIN`` row gives the loss terms.
        rename: applied to the validation figures (e.g. names free of a params value).
    Returns:
        ``step``, ``samples`` (samples trained), ``train/...`` (the loss terms of the last log tick) and the
        renamed validation figures.
    """
    rename = rename or dict
    figures = {name: value for name, value in final.items() if name not in (STEP, "cur_nsamples")}
    last = history.get(TRAIN) or [{}]
    losses = {name: value for name, value in last[-1].items() if name not in (STEP, SAMPLES)}
    return {STEP: final[STEP], SAMPLES: final["cur_nsamples"], **losses, **rename(figures)}


def write_training_outputs(stage: str, final: Mapping[str, Any], history: Mapping[str, Sequence[Row]],
                           metrics_root: str | Path, plots_root: str | Path,
                           rename: Rename | None = None) -> list[Path]:
    """Write a training stage's DVC metrics and plots: ``{metrics_root}/{stage}.json`` (``stage_metrics``, nested),
    ``{plots_root}/{stage}/loss.csv`` (the ``TRAIN`` rows) and ``val.csv`` (the ``VAL`` rows, renamed).

    The metrics file's keys, by stage (the names the loops log to MLflow, nested at ``/``):

    - every stage: ``step``, ``samples`` and ``train.<term>``, each loss term of the last log tick: ``train.loss``
      (stage 1); ``train.loss_g``, ``train.loss_d``, ``train.l1`` (reconstruction) and L_G's terms ``gan``, ``feat``,
      ``ol``, ``cl``, ``vgg``, ``gaze``, ``lmk`` when on (stage 2); ``train.loss``, ``train.x0``, ``train.vel``
      (stage 4); ``train.loss``, ``train.mse``, ``train.vel`` (stage 5);
    - ``train_contrastive``: ``val.*`` and ``val_ema.*``: ``top1``, ``top5``, ``sync_top1``, ``sync_pairwise`` and
      the chance levels ``chance_top1``, ``chance_sync_top1`` (trained and EMA network);
    - ``train_disentangle``: ``val.recon_l1``, ``val.psnr``, ``val.nl_reliance``, ``val.nl_spread`` and, on data with
      motion truth, ``val.probe_nl.<target>``, ``val.probe_lip.<target>`` (probe r of f_nl and f_l, e.g. ``yaw``),
      ``val.partial_nl.<target>``, ``val.partial_lip.<target>``;
    - ``train_prior``: ``val.guided.*`` (at the configured guidance scale) and ``val.unguided.*`` (s = 0):
      ``fd``, ``fd_vel``, ``speed_corr``, ``gesture``; and ``val.gesture_truth``;
    - ``train_prior_ar``: ``val.fd``, ``val.fd_vel``, ``val.speed_corr``, ``val.gesture``, ``val.gesture_truth``.

    Args:
        stage: the DVC stage name.
        final: see ``stage_metrics``.
        history: the run's rows by kind, each ``{"step", "samples", name: value}``.
        metrics_root: ``paths.metrics``; plots_root: ``paths.plots`` (local folders).
        rename: applied to the final validation figures and to every ``VAL`` row.
    Returns:
        The three written paths.
    """
    rename = rename or dict
    return [write_metrics_json(metrics_path(metrics_root, stage), stage_metrics(final, history, rename)),
            write_rows_csv(plot_path(plots_root, stage, LOSS_PLOT), history.get(TRAIN, [])),
            write_rows_csv(plot_path(plots_root, stage, VAL_PLOT), [rename(row) for row in history.get(VAL, [])])]
