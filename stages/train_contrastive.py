"""DVC stage ``train_contrastive``: E_a, E_v and MLP_cl under L_cl on Ray Train (stage 1 of issue 5)."""

from __future__ import annotations

from pathlib import Path

import typer

from thpad.pipelines.train.contrastive.loop import STAGE
from thpad.pipelines.train.contrastive.loop import train_contrastive as run_stage
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
from thpad.storage.manifest import manifest_uri, required_shards
from thpad.storage.uri import Storage, StorageError


def train_contrastive(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Train the audio encoder E_a and the visual encoder E_v (+MLP_cl) with the CLIP-style loss, after E_v's
    warm-up on the mouth's landmark motion (train_contrastive.landmark_motion); writes the EMA snapshot to
    paths.contrastive, the DVC metrics to paths.metrics and the loss and validation curves to paths.plots. A rerun
    with the same config and data resumes its training state."""
    p = read_params(params)
    cfg = with_absolute_paths(p.train_contrastive, "shards", "work", "out")
    if dry_run:
        print_dry_run(cfg)
        return
    if not Storage(cfg.s3).exists(manifest_uri(cfg.shards)):
        fail(f"no preprocessed data at {cfg.shards} (no manifest.parquet); run `thpad preprocess` or "
             "`dvc repro preprocess` first, or fix paths.preprocessed", EXIT_CONFIG)
    try:
        for split in ("train", "val"):
            required_shards(cfg.shards, split, Storage(cfg.s3), STAGE)
    except ValueError as err:
        fail(str(err), EXIT_CONFIG)
    try:
        result = run_stage(cfg)
    except StorageError as err:
        fail(str(err), EXIT_FAILED)
    export_dvc_outputs(result, STAGE, p.paths.metrics, p.paths.plots)
    metrics = result.metrics or {}
    typer.echo(f"{STAGE}: {metrics.get('step', 0)} steps, {metrics.get('cur_nsamples', 0)} samples; "
               f"val audio->frame top-1 {metrics.get('val_ema/top1', float('nan')):.3f} "
               f"(chance {metrics.get('val_ema/chance_top1', float('nan')):.3f}), "
               f"top-5 {metrics.get('val_ema/top5', float('nan')):.3f}; within-clip (sync) top-1 "
               f"{metrics.get('val_ema/sync_top1', float('nan')):.3f} "
               f"(chance {metrics.get('val_ema/chance_sync_top1', float('nan')):.3f}), pairwise "
               f"{metrics.get('val_ema/sync_pairwise', float('nan')):.3f} (chance 0.500); snapshot {cfg.out}")
