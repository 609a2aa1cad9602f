"""The evaluation's DVC plots files: every declared file is written, even when its part of the suite was skipped
(DVC refuses a stage whose declared output is missing)."""

from __future__ import annotations

import csv

import numpy as np

from thpad.pipelines.evaluate.outputs import write_plots
from thpad.pipelines.evaluate.suite import SuiteResult


def test_every_plot_file_is_written_even_without_the_sampler_comparison(tmp_path) -> None:
    rows = [{"s": s, "metric": "snd", "mean": 1.0 + s, "ci": 0.1, "space": "measured"} for s in (0.0, 2.5)]
    result = SuiteResult(metrics={}, table1_rows=rows, timeline={"real": np.zeros((3, 4))})
    write_plots(result, tmp_path)
    assert {p.name for p in tmp_path.iterdir()} == {"table1.csv", "samplers.csv", "timeline.csv"}
    with (tmp_path / "samplers.csv").open() as f:
        assert next(csv.reader(f)) == ["sampler", "fid_fm", "seconds_per_video_second"]
    with (tmp_path / "table1.csv").open() as f:
        assert [r["measured_snd"] for r in csv.DictReader(f)] == ["1.0", "3.5"]
