"""DVC stage ``train_disentangle``: E_id, E_v's heads, MLP_a2l, G and D under L_G on Ray Train (stage 2 of issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.disentangle.inputs import StageInputError
from thpad.pipelines.train.disentangle.loop import STAGE
from thpad.pipelines.train.disentangle.loop import train_disentangle as run_stage
from thpad.pipelines.train.harness import export_dvc_outputs
from thpad.stages.common import (
    DRY_RUN_OPTION,
    EXIT_CONFIG,
    EXIT_FAILED,
    PARAMS_OPTION,
    fail,
    print_dry_run,
    read_params,
    with_absolute_paths,
)
from thpad.stages.params import PathsConfig
from thpad.storage.uri import StorageError


def train_disentangle(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Train the non-lip space: E_id, E_v (+MLP_ol/MLP_nl), MLP_a2l, G and D from the stage-1 snapshot; writes the
    EMA talking head to paths.disentangle, the DVC metrics to paths.metrics and the loss and validation curves to
    paths.plots. A rerun with the same config and inputs resumes its training state."""
    p = read_params(params)
    cfg = with_absolute_paths(p.train_disentangle, "shards", "contrastive", "work", "out")
    run_command(cfg, dry_run, p.paths)


def run_command(cfg: DisentangleConfig, dry_run: bool = False, paths: PathsConfig | None = None) -> None:
    """The stage on a resolved config: input checks with clean errors, the run, its DVC metrics and plots (in
    ``paths.metrics`` and ``paths.plots``; none without ``paths``), a one-line summary."""
    if dry_run:
        print_dry_run(cfg)
        return
    try:
        result = run_stage(cfg)  # checks the stage-1 snapshot, the data and weight files before Ray starts
    except StageInputError as err:
        fail(str(err), EXIT_CONFIG)
    except StorageError as err:
        fail(str(err), EXIT_FAILED)
    if paths is not None:
        export_dvc_outputs(result, STAGE, paths.metrics, paths.plots)
    m = result.metrics or {}
    probe = ", ".join(f"{t} {m[f'val/probe_nl/{t}']:.2f}/{m[f'val/probe_lip/{t}']:.2f}"
                      for t in cfg.validation.probe_targets if f"val/probe_nl/{t}" in m)
    typer.echo(f"{STAGE}: {m.get('step', 0)} steps, {m.get('cur_nsamples', 0)} samples; val reconstruction L1 "
               f"{m.get('val/recon_l1', float('nan')):.3f} (PSNR {m.get('val/psnr', float('nan')):.1f} dB)"
               + (f"; motion probe r (non-lip/lip): {probe}" if probe else "") + f"; snapshot {cfg.out}")
