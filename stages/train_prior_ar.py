"""DVC stage ``train_prior_ar``: the causal auto-regressive baseline prior on Ray Train (stage 5 of issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from thpad.pipelines.train.harness import export_dvc_outputs
from thpad.pipelines.train.prior.autoregressive import STAGE
from thpad.pipelines.train.prior.autoregressive import train_prior_ar as run_stage
from thpad.pipelines.train.prior.data import check_features
from thpad.stages.common import (
    DRY_RUN_OPTION,
    PARAMS_OPTION,
    print_dry_run,
    read_params,
    run_checked,
    with_absolute_paths,
)
from thpad.storage.uri import Storage


def train_prior_ar(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Train the auto-regressive prior (causal transformer, next-frame MSE) on the extracted f_nl / f_a
    sequences; writes the EMA snapshot to paths.prior_ar, the DVC metrics to paths.metrics and the curves to
    paths.plots. A rerun with the same config and features resumes."""
    p = read_params(params)
    cfg = with_absolute_paths(p.train_prior_ar, "features", "work", "out")
    if dry_run:
        print_dry_run(cfg)
        return
    result = run_checked(lambda: run_stage(cfg), lambda: check_features(cfg.features, Storage(cfg.s3)),
                         "paths.features")
    export_dvc_outputs(result, STAGE, p.paths.metrics, p.paths.plots)
    m = result.metrics or {}
    typer.echo(f"{STAGE}: {m.get('step', 0)} steps, {m.get('cur_nsamples', 0)} samples; val FD of f_nl "
               f"{m.get('val/fd', float('nan')):.3g} (velocity {m.get('val/fd_vel', float('nan')):.3g}); "
               f"snapshot {cfg.out}")
