"""``thpad submit STAGE... | all``: run stages as one Ray job on an existing cluster (Ray Jobs API)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import NoReturn

import typer

from thpad.pipelines.ray_env import project_root
from thpad.pipelines.submit import (
    connect,
    describe_job,
    failure_reason,
    follow_job,
    prepare_job,
    resolve_address,
    resolve_stages,
)
from thpad.stages.common import EXIT_CONFIG, EXIT_FAILED, PARAMS_OPTION, read_params

EXIT_INTERRUPTED = 130


def submit(
    stages: list[str] = typer.Argument(..., metavar="STAGE...", help="DVC stage names (run in DAG order), or 'all'."),
    address: str | None = typer.Option(None, help="The cluster's Jobs API, e.g. http://HEAD:8265 "
                                       "(default: submit.address, else RAY_API_SERVER_ADDRESS / RAY_ADDRESS)."),
    follow: bool = typer.Option(True, "--follow/--no-follow", help="Print the job's logs until it ends."),
    params: Path = PARAMS_OPTION,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the entrypoint and runtime env; submit nothing."),
) -> None:
    """Upload the project (without .venv, data, caches, outputs) with PARAMS as params.yaml and run the
    stages' commands as a Ray job. Paths in PARAMS are read on the cluster: use s3:// URIs or shared
    storage. Exit status: 0 when the job succeeds, 1 when it fails or is stopped."""
    cfg = read_params(params).submit
    try:
        names = resolve_stages(stages)
        target = resolve_address(address, cfg, os.environ) if not dry_run else address or cfg.address
    except ValueError as err:
        _fail(str(err), EXIT_CONFIG)
    with tempfile.TemporaryDirectory(prefix="thpad-submit-") as tmp:
        try:
            spec = prepare_job(names, params, cfg, project_root(), Path(tmp), os.environ)
        except ValueError as err:
            _fail(str(err), EXIT_CONFIG)
        typer.echo(spec.package.summary(), err=True)
        if dry_run:
            typer.echo(json.dumps(describe_job(spec, target, project_root()), indent=2))
            return
        try:
            client = connect(target)
            job_id = client.submit_job(entrypoint=spec.entrypoint, runtime_env=spec.runtime_env,
                                       metadata=spec.metadata)
        except (ConnectionError, RuntimeError) as err:
            _fail(f"could not submit to the Ray cluster at {target}: {err}", EXIT_FAILED)
    typer.echo(f"submitted job {job_id} to {target}: {spec.entrypoint}")
    if not follow:
        typer.echo(f"follow it with: ray job logs --follow {job_id} --address {target}")
        return
    try:
        status = follow_job(client, job_id, lambda text: typer.echo(text, nl=False))
    except KeyboardInterrupt:
        typer.secho(f"\nstopped following; job {job_id} keeps running. Follow it again: ray job logs --follow "
                    f"{job_id} --address {target}; stop it: ray job stop {job_id} --address {target}",
                    err=True, fg=typer.colors.YELLOW)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if status.value != "SUCCEEDED":
        _fail(f"job {job_id} {status.value}: {failure_reason(client, job_id)}", EXIT_FAILED)
    typer.echo(f"job {job_id} SUCCEEDED")


def _fail(message: str, code: int) -> NoReturn:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)
