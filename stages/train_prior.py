"""DVC stage ``train_prior``: the audio-to-non-lip diffusion prior on Ray Train (stage 4 of issue 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from thpad.pipelines.train.motion_data import check_features
from thpad.pipelines.train.prior import STAGE
from thpad.pipelines.train.prior import train_prior as run_stage
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
from thpad.storage.uri import Storage, StorageError


def train_prior(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Train the diffusion prior P_a2nl on the extracted f_nl / f_a sequences (condition dropout, mask editing,
    velocity loss); writes the EMA snapshot to train_prior.out. A rerun with the same config and features
    resumes its training state; the validation block may change freely."""
    cfg = with_absolute_paths(read_params(params).train_prior, "features", "work", "out")
    if dry_run:
        print_dry_run(cfg)
        return
    m, s = run_motion_stage(cfg, STAGE, run_stage), f"{cfg.validation.guidance:g}"
    fd = {k: m.get(f"val/{k}", float("nan")) for k in (f"fd_s{s}", "fd_s0", f"fd_vel_s{s}", "fd_vel_s0")}
    rescale = f" (rescale {cfg.validation.guidance_rescale:g})" if cfg.validation.guidance_rescale else ""
    typer.echo(f"{STAGE}: {m.get('step', 0)} steps, {m.get('cur_nsamples', 0)} samples; val FD of f_nl at "
               f"s={s}{rescale} {fd[f'fd_s{s}']:.3g} vs s=0 {fd['fd_s0']:.3g} (velocity {fd[f'fd_vel_s{s}']:.3g} vs "
               f"{fd['fd_vel_s0']:.3g}); snapshot {cfg.out}")


def run_motion_stage(cfg: Any, stage: str, run: Callable[[Any], Any]) -> dict[str, Any]:
    """Check the features (exit 2 naming ``{stage}.features``), run a motion prior's stage (exit 1 on a storage
    error) and return its final metrics."""
    try:
        check_features(cfg.features, Storage(cfg.s3))
    except (FileNotFoundError, ValueError) as err:
        fail(f"{err} ({stage}.features)", EXIT_CONFIG)
    try:
        result = run(cfg)
    except StorageError as err:
        fail(str(err), EXIT_FAILED)
    return dict(result.metrics or {})
