"""DVC stage ``preprocess`` and ``thpad preprocess SRC OUT``: raw clips to WebDataset shards on Ray Data."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import typer

from thpad.pipelines.preprocess.run import run_preprocess
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

log = logging.getLogger(__name__)


def preprocess(
    src: str | None = typer.Argument(None, help="Corpus root, local or s3:// (default: paths.corpus)."),
    out: str | None = typer.Argument(None, help="Output folder, local or s3:// (default: paths.preprocessed)."),
    workers: int | None = typer.Option(None, help="Ray workers (params: runtime.workers.preprocess)."),
    strict: bool = typer.Option(False, "--strict", help="Exit with status 3 when any input was refused."),
    params: Path = PARAMS_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Decode, track, align and cut mel windows for every clip of a VoxCeleb2-layout corpus into
    OUT/shards/{split}-NNNNNN.tar, OUT/manifest.parquet and OUT/rejects.parquet. Bad inputs are
    recorded with a reason, never fatal; a rerun resumes from the finished shards."""
    p = read_params(params)
    overrides = {"source": src, "out": out, "workers": workers}
    cfg = dataclasses.replace(p.preprocess, **{k: v for k, v in overrides.items() if v is not None})
    cfg = with_absolute_paths(cfg, "source", "out")  # Ray workers of a joined cluster run in other folders
    if dry_run:
        print_dry_run(cfg)
        return
    start = time.perf_counter()
    try:
        summary = run_preprocess(cfg, Storage(cfg.s3))
    except ValueError as err:
        fail(str(err), EXIT_CONFIG)
    except StorageError as err:
        fail(f"{err}\n(rerun the same command to resume)", EXIT_FAILED)
    typer.echo(summary_table(summary, time.perf_counter() - start))
    if strict and summary["rejected"]:
        raise typer.Exit(3)


def summary_table(summary: dict, seconds: float) -> str:
    """A plain-text summary: accepted per split, refusals by reason, resumed shards, time."""
    lines = [f"preprocess: {summary['discovered']} inputs, {summary['accepted']} accepted, "
             f"{summary['rejected']} refused, {summary['shards']} shards "
             f"({summary['shards_resumed']} resumed) in {seconds:.1f} s",
             "  split   clips"]
    lines += [f"  {split:<7} {count:>5}" for split, count in sorted(summary["per_split"].items())]
    timing = summary.get("timing", {})
    if timing.get("frames"):
        lines.append(f"  {timing['frames']} frames written at {timing['ms_per_frame_per_worker']:.2f} ms per frame and "
                     f"worker; workers took {timing['worker_start_seconds']:.1f} s to start")
    lines += [f"  warning: split {split!r} is empty: {why}" for split, why in summary.get("empty_splits", {}).items()]
    if summary["rejects"]:
        lines.append("  refused input                                      reason")
        lines += [f"  {src[-50:]:<50} {reason}" for src, reason in summary["rejects"]]
    return "\n".join(lines)
