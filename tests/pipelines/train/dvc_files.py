"""Reading back the DVC metrics and plots a training run's stage process writes (``harness.export_dvc_outputs``),
for the stage tests that run Ray Train."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thpad.pipelines.train.harness import export_dvc_outputs
from thpad.storage.dvc_outputs import Rename


@dataclass(frozen=True)
class DvcFiles:
    """What a stage wrote: its metrics (nested JSON) and the rows of its loss and validation plots."""

    metrics: dict[str, Any]
    loss: list[dict[str, str]]
    val: list[dict[str, str]]

    def steps(self, kind: str) -> list[int]:
        """The steps of the ``loss`` or ``val`` plot, in file order."""
        return [int(row["step"]) for row in getattr(self, kind)]


def export(result: Any, stage: str, root: Path, rename: Rename | None = None) -> DvcFiles:
    """Write the stage's DVC files under ``root`` (``metrics/``, ``plots/``) as its command does, and read them."""
    json_path, loss_path, val_path = export_dvc_outputs(result, stage, root / "metrics", root / "plots", rename)
    assert (json_path, loss_path, val_path) == (root / "metrics" / f"{stage}.json", root / "plots" / stage / "loss.csv",
                                                root / "plots" / stage / "val.csv")
    with open(loss_path, newline="") as loss, open(val_path, newline="") as val:
        return DvcFiles(json.loads(json_path.read_text()), list(csv.DictReader(loss)), list(csv.DictReader(val)))


def leaves(tree: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted name, value) of every figure of a nested metrics dict, as DVC flattens it."""
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def assert_finite(files: DvcFiles, keys: set[str]) -> None:
    """Each dotted key is in the metrics and finite; every plot cell is a finite number or empty."""
    flat = dict(leaves(files.metrics))
    assert keys <= set(flat), sorted(keys - set(flat))
    assert all(isinstance(flat[k], int | float) and math.isfinite(flat[k]) for k in keys), {k: flat[k] for k in keys}
    for row in files.loss + files.val:
        assert all(cell == "" or math.isfinite(float(cell)) for cell in row.values()), row
