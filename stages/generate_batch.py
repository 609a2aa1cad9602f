"""``thpad generate-batch JOBS OUT``: a table of photo + speech rows to videos on Ray Data."""

from __future__ import annotations

from pathlib import Path

import typer

from thpad.stages.common import DRY_RUN_OPTION, EXIT_CONFIG, PARAMS_OPTION, fail, print_dry_run, read_params


def generate_batch(
    jobs: Path = typer.Argument(..., help="CSV, JSONL or parquet: columns image, audio (+ id, seed, guidance, "
                                          "samples, keyframes 'F=photo;...', nonlip_from)."),
    out: str = typer.Argument(..., help="Output folder, local or s3:// (videos, sidecars, results.parquet)."),
    model: str = typer.Option("", help="A bundle folder (default: paths.bundle)."),
    workers: int | None = typer.Option(None, help="Ray Data actors (params: runtime.workers.generate)."),
    params: Path = PARAMS_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Generate a video per row of JOBS; every row ends in OUT/results.parquet with its video or the reason it
    failed, and a rerun skips the rows already done.

    Example: thpad generate-batch jobs.csv out/ --workers 2"""
    from thpad.pipelines.generate.batch import run_batch

    p = read_params(params)
    bundle, count = model or p.paths.bundle, workers or p.runtime.workers.generate
    if dry_run:
        print_dry_run(p.runtime)
        return
    if not Path(bundle, "bundle.json").is_file():
        fail(f"{bundle} is not a thpad bundle (no bundle.json): run `dvc repro bundle` or pass --model", EXIT_CONFIG)
    try:
        summary = run_batch(str(jobs), out, bundle, p.runtime.ray, p.runtime.s3, count)
    except ValueError as err:
        fail(str(err), EXIT_CONFIG)
    typer.echo(f"generate-batch: {summary['jobs']} jobs, {summary['ok']} ok ({summary['skipped']} from an earlier "
               f"run), {summary['failed']} failed; see {out}/results.parquet")
