"""The training stages' DVC metrics and plots files: flat MLflow names nested, non-finite values as null, CSV rows
ordered and unique by step, the files of one stage from a fake run history, and atomic writes."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from thpad.storage.dvc_outputs import (
    LOSS_PLOT,
    TRAIN,
    VAL,
    VAL_PLOT,
    finite,
    metrics_path,
    nest,
    plot_path,
    stage_metrics,
    unique_steps,
    write_metrics_json,
    write_rows_csv,
    write_training_outputs,
)

# A resumed run's history as rank 0 keeps it: steps 1-4, validations at 0, 2 and 4 (probe targets as in stage 2).
HISTORY = {
    TRAIN: [{"step": s, "samples": 4 * s, "train/loss_g": 1.0 / s, "train/loss_d": 0.5} for s in (1, 2, 3, 4)],
    VAL: [{"step": s, "samples": 4 * s, "val/recon_l1": 0.3 - 0.01 * s, "val/probe_nl/yaw": 0.1 * s,
           "val/probe_lip/yaw": float("nan")} for s in (0, 2, 4)],
}
FINAL = {"step": 4, "cur_nsamples": 16, "val/recon_l1": 0.26, "val/psnr": 11.5, "val/probe_nl/yaw": 0.4,
         "val/probe_lip/yaw": float("nan"), "val/probe_nl/pitch": np.float32(0.25)}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def test_finite_keeps_ints_and_floats_and_nulls_the_rest() -> None:
    assert finite(3) == 3 and isinstance(finite(np.int64(3)), int)
    assert finite(0.5) == 0.5 and isinstance(finite(np.float32(0.5)), float)
    assert finite(float("nan")) is None and finite(float("-inf")) is None and finite(None) is None
    with pytest.raises(TypeError, match="not a number"):
        finite("0.5")


def test_nest_splits_names_at_slashes() -> None:
    assert nest({"step": 4, "val/recon_l1": 0.2, "val/probe_nl/yaw": 0.5, "val/probe_nl/roll": math.inf}) == {
        "step": 4, "val": {"recon_l1": 0.2, "probe_nl": {"yaw": 0.5, "roll": None}}}
    assert nest({}) == {}


@pytest.mark.parametrize("flat", [{"val/a": 1.0, "val/a/b": 2.0}, {"val/a/b": 2.0, "val/a": 1.0}, {"val//a": 1.0}])
def test_nest_refuses_ambiguous_names(flat: dict) -> None:
    with pytest.raises(ValueError, match="val"):
        nest(flat)


def test_unique_steps_orders_rows_and_keeps_the_last_of_a_step() -> None:
    rows = [{"step": 2, "x": 1.0}, {"step": 1, "x": 2.0}, {"step": 2, "x": 3.0}]
    assert unique_steps(rows) == [{"step": 1, "x": 2.0}, {"step": 2, "x": 3.0}]


def test_metrics_json_is_nested_and_strict(tmp_path: Path) -> None:
    path = write_metrics_json(tmp_path / "m" / "stage.json", {"val/fd": float("nan"), "step": 3})
    text = path.read_text()
    assert json.loads(text) == {"step": 3, "val": {"fd": None}}
    assert "NaN" not in text and not list(path.parent.glob(".*partial*"))


def test_csv_has_step_samples_then_figures_and_empty_cells(tmp_path: Path) -> None:
    rows = [{"step": 2, "samples": 8, "train/a": 0.1, "train/lmk": 1.0},
            {"step": 1, "samples": 4, "train/a": float("nan")},
            {"step": 3, "samples": 12, "train/a": 1 / 3}]
    path = write_rows_csv(tmp_path / "loss.csv", rows)
    assert path.read_text().splitlines()[0] == "step,samples,train/a,train/lmk"
    assert read_csv(path) == [{"step": "1", "samples": "4", "train/a": "", "train/lmk": ""},
                              {"step": "2", "samples": "8", "train/a": "0.1", "train/lmk": "1.0"},
                              {"step": "3", "samples": "12", "train/a": repr(1 / 3), "train/lmk": ""}]
    assert float(read_csv(path)[2]["train/a"]) == 1 / 3  # full precision
    assert write_rows_csv(tmp_path / "empty.csv", []).read_text() == "step,samples\n"


def test_stage_metrics_hold_progress_last_losses_and_final_figures() -> None:
    flat = stage_metrics(FINAL, HISTORY)
    assert flat["step"] == 4 and flat["samples"] == 16
    assert flat["train/loss_g"] == 0.25 and flat["train/loss_d"] == 0.5
    assert flat["val/recon_l1"] == 0.26 and "cur_nsamples" not in flat
    assert stage_metrics(FINAL, {TRAIN: [], VAL: []})["step"] == 4  # no history (a state from older code)
    renamed = stage_metrics(FINAL, HISTORY, lambda m: {k.replace("probe_", "p_"): v for k, v in m.items()})
    assert "val/p_nl/yaw" in renamed and "val/probe_nl/yaw" not in renamed


def test_training_outputs_of_one_stage(tmp_path: Path) -> None:
    paths = write_training_outputs("train_disentangle", FINAL, HISTORY, tmp_path / "metrics", tmp_path / "plots")
    assert paths == [metrics_path(tmp_path / "metrics", "train_disentangle"),
                     plot_path(tmp_path / "plots", "train_disentangle", LOSS_PLOT),
                     plot_path(tmp_path / "plots", "train_disentangle", VAL_PLOT)]
    assert paths[0] == tmp_path / "metrics" / "train_disentangle.json"
    metrics = json.loads(paths[0].read_text())
    assert metrics["val"]["recon_l1"] == 0.26 and metrics["val"]["probe_nl"] == {"yaw": 0.4, "pitch": 0.25}
    assert metrics["val"]["probe_lip"] == {"yaw": None}
    assert metrics["train"] == {"loss_g": 0.25, "loss_d": 0.5} and metrics["samples"] == 16
    loss = read_csv(paths[1])
    assert [row["step"] for row in loss] == ["1", "2", "3", "4"] and list(loss[0]) == ["step", "samples",
                                                                                       "train/loss_g", "train/loss_d"]
    val = read_csv(paths[2])
    assert [row["step"] for row in val] == ["0", "2", "4"] and val[1]["val/probe_nl/yaw"] == "0.2"
    assert {row["val/probe_lip/yaw"] for row in val} == {""}
