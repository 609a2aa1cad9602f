"""What every stage entry point shares: logging set-up, strict params loading with clean errors,
and the ``--dry-run`` print of the resolved config."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer

from thpad.codec import ConfigError
from thpad.stages.params import Params, dump_json, load_params
from thpad.storage.uri import StorageError, is_s3

PARAMS_OPTION = typer.Option(Path("params.yaml"), "--params", help="The params file to read (strictly).")
DRY_RUN_OPTION = typer.Option(False, "--dry-run", help="Print the resolved config as JSON and exit.")

EXIT_CONFIG = 2  # bad params or arguments
EXIT_FAILED = 1  # the work itself failed


def setup_logging(verbose: bool) -> None:
    """Narrating logs on stderr: INFO by default, DEBUG with ``--verbose``."""
    level = logging.DEBUG if verbose or os.environ.get("THPAD_DEBUG") else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


def read_params(path: Path) -> Params:
    """Load params or exit with code 2 and a message naming the file and the key."""
    try:
        return load_params(path)
    except ConfigError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_CONFIG) from err


def with_absolute_paths(cfg: Any, *fields: str) -> Any:
    """``cfg`` with its local relative path ``fields`` made absolute (against the current folder, the
    repository root under DVC): Ray workers run in folders of their own. ``s3://`` URIs are kept."""
    changes = {f: str(Path(getattr(cfg, f)).resolve()) for f in fields if not is_s3(getattr(cfg, f))}
    return dataclasses.replace(cfg, **changes)


def print_dry_run(cfg: Any) -> None:
    """The resolved config, as JSON on stdout."""
    typer.echo(dump_json(cfg))


def fail(message: str, code: int) -> NoReturn:
    """Print ``message`` as an error on stderr and exit with ``code``."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def run_checked(run: Callable[[], Any], check: Callable[[], None], key: str) -> Any:
    """Check a stage's inputs (a ``FileNotFoundError`` or ``ValueError``: exit 2 naming the params ``key``), run it
    (a ``StorageError``: exit 1) and return what the run returned (a training stage: Ray Train's ``Result``)."""
    try:
        check()
    except (FileNotFoundError, ValueError) as err:
        fail(f"{err} ({key})", EXIT_CONFIG)
    try:
        return run()
    except StorageError as err:
        fail(str(err), EXIT_FAILED)
