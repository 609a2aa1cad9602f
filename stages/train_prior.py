"""DVC stage ``train_prior``: the audio-to-non-lip diffusion prior on Ray Train (stage 4 of issue 5)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from thpad.pipelines.train.harness import export_dvc_outputs
from thpad.pipelines.train.prior.data import check_features
from thpad.pipelines.train.prior.diffusion import STAGE, guidance_free_names
from thpad.pipelines.train.prior.diffusion import train_prior as run_stage
from thpad.stages.common import (
    DRY_RUN_OPTION,
    PARAMS_OPTION,
    print_dry_run,
    read_params,
    run_checked,
    with_absolute_paths,
)
from thpad.storage.uri import Storage


def train_prior(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Train the diffusion prior P_a2nl on the extracted f_nl / f_a sequences (condition dropout, mask editing,
    velocity loss); writes the EMA snapshot to paths.prior, the DVC metrics to paths.metrics (FD figures named
    val.guided.* and val.unguided.*, whatever the guidance scale) and the curves to paths.plots. A rerun with the
    same config and features resumes its training state; the validation block may change freely."""
    p = read_params(params)
    cfg = with_absolute_paths(p.train_prior, "features", "work", "out")
    if dry_run:
        print_dry_run(cfg)
        return
    result = run_checked(lambda: run_stage(cfg), lambda: check_features(cfg.features, Storage(cfg.s3)),
                         "paths.features")
    export_dvc_outputs(result, STAGE, p.paths.metrics, p.paths.plots,
                       partial(guidance_free_names, guidance=cfg.validation.guidance))
    m = result.metrics or {}
    s = f"{cfg.validation.guidance:g}"
    fd = {k: m.get(f"val/{k}", float("nan")) for k in (f"fd_s{s}", "fd_s0", f"fd_vel_s{s}", "fd_vel_s0")}
    rescale = f" (rescale {cfg.validation.guidance_rescale:g})" if cfg.validation.guidance_rescale else ""
    typer.echo(f"{STAGE}: {m.get('step', 0)} steps, {m.get('cur_nsamples', 0)} samples; val FD of f_nl at "
               f"s={s}{rescale} {fd[f'fd_s{s}']:.3g} vs s=0 {fd['fd_s0']:.3g} (velocity {fd[f'fd_vel_s{s}']:.3g} vs "
               f"{fd['fd_vel_s0']:.3g}); snapshot {cfg.out}")

