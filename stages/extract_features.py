"""DVC stage ``extract_features``: per-clip f_nl and f_a sequences from the stage-2 encoders, on Ray Data."""

from __future__ import annotations

from pathlib import Path

import typer

from thpad.pipelines.features.extract import record_run, run_extract
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


def extract_features(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Run E_v (+MLP_ol, MLP_nl) and E_a of the train_disentangle snapshot over every preprocessed clip; writes
    one parquet file of per-frame features per shard and info.json to extract_features.out. A rerun skips the
    shards already done with the same snapshot and shard contents."""
    cfg = with_absolute_paths(read_params(params).extract_features, "disentangle", "shards", "out")
    if dry_run:
        print_dry_run(cfg)
        return
    try:
        summary = run_extract(cfg, Storage(cfg.s3))
    except ValueError as err:
        fail(str(err), EXIT_CONFIG)
    except StorageError as err:
        fail(f"{err}\n(rerun the same command to resume)", EXIT_FAILED)
    record_run(cfg, summary)
    speed = f"{summary['frames_per_s']:.0f} frames/s per worker" if summary["frames_per_s"] else "all resumed"
    typer.echo(f"extract_features: {sum(summary['clips'].values())} clips, {sum(summary['frames'].values())} "
               f"frames in {summary['seconds']:.1f} s ({summary['shards_resumed']} shards resumed, {speed}); "
               f"per split {summary['clips']}; f_nl {summary['nl_dim']}-d, f_a {summary['audio_dim']}-d; "
               f"{cfg.out}")
