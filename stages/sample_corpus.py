"""DVC stage ``sample_corpus`` and ``thpad sample-corpus``: write the bundled sample corpus."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import typer

from thpad.pipelines.corpus.build import build_corpus
from thpad.stages.common import DRY_RUN_OPTION, EXIT_CONFIG, PARAMS_OPTION, print_dry_run, read_params

log = logging.getLogger(__name__)


def sample_corpus(
    out: Path | None = typer.Argument(None, help="Output folder (default: paths.sample_corpus from params)."),
    identities: int | None = typer.Option(None, help="Number of identities (params: corpus.identities)."),
    clips: int | None = typer.Option(None, help="Clips per identity (params: corpus.clips)."),
    seconds: float | None = typer.Option(None, help="Seconds per clip (params: corpus.seconds)."),
    seed: int | None = typer.Option(None, help="Random seed (params: corpus.seed)."),
    workers: int | None = typer.Option(None, help="Worker processes (params: runtime.workers.corpus)."),
    params: Path = PARAMS_OPTION,
    dry_run: bool = DRY_RUN_OPTION,
) -> None:
    """Write a small VoxCeleb2-shaped corpus: real portraits and espeak-ng speech, animated with known
    motion (truth JSON beside each clip). Rerunning resumes: finished clips are kept."""
    p = read_params(params)
    overrides = {"identities": identities, "clips": clips, "seconds": seconds, "seed": seed, "workers": workers}
    cfg = dataclasses.replace(p.corpus, **{k: v for k, v in overrides.items() if v is not None})
    target = out or Path(p.paths.sample_corpus)
    if dry_run:
        print_dry_run(cfg)
        return
    start = time.perf_counter()
    try:
        summary = build_corpus(cfg, target)
    except ValueError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(EXIT_CONFIG) from err
    splits = {s: sum(c.startswith(s + "/") for c in summary["clips"]) for s in ("dev", "test")}
    log.info("sample corpus in %s: %d clips (%s) in %.1f s", target, len(summary["clips"]), splits,
             time.perf_counter() - start)
