"""``thpad params``: validate a params file strictly and print it resolved."""

from __future__ import annotations

from pathlib import Path

from thpad.stages.common import PARAMS_OPTION, print_dry_run, read_params


def show_params(params: Path = PARAMS_OPTION) -> None:
    """Load PARAMS strictly (unknown or missing keys are errors) and print the resolved config as JSON."""
    print_dry_run(read_params(params))
