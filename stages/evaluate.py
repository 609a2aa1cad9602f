"""DVC stage ``evaluate`` and ``thpad evaluate``: the evaluation suite on a bundle (docs/metrics.md)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import typer

from thpad.stages.common import DRY_RUN_OPTION, EXIT_CONFIG, PARAMS_OPTION, fail, print_dry_run, read_params
from thpad.stages.params import Params
from thpad.storage.uri import Storage

BUNDLE_OPTION = typer.Option(None, "--bundle", help="The bundle to judge (default: paths.bundle).")
DATA_OPTION = typer.Option(None, "--preprocessed", help="The preprocessed folder whose splits are evaluated "
                           "(default: paths.preprocessed).")
OUT_OPTION = typer.Option(None, "--out", help="Write everything under this folder (evaluate.json, plots/, the "
                          "report) instead of paths.metrics, paths.plots and paths.evaluate.")
TRACK_OPTION = typer.Option(True, "--track/--no-track", help="Log an MLflow run under the pipeline's parent.")


def evaluate(params: Path = PARAMS_OPTION, bundle: str | None = BUNDLE_OPTION, preprocessed: str | None = DATA_OPTION,
             out: Path | None = OUT_OPTION, track: bool = TRACK_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Measure a bundle's rendered frames and sampled motion on the test and val splits: the measurer's validation,
    Table I, diffusion against AR, samplers, reconstruction, lip sync, identity, disentanglement and editing. Writes
    the metrics JSON, DVC plots CSVs and an HTML report with figures and videos.

    Example: thpad evaluate --bundle data/bundle --out compare/run2"""
    from thpad.pipelines.evaluate.outputs import write_outputs
    from thpad.pipelines.evaluate.suite import run_suite
    from thpad.pipelines.generate.model import TalkingHeadModel
    from thpad.storage.bundle import BundleError

    p = read_params(params)
    if dry_run:
        print_dry_run(p.evaluate)
        return
    bundle_dir, data = bundle or p.paths.bundle, preprocessed or p.paths.preprocessed
    metrics_file, plots, folder = targets(p, out)
    try:
        model = TalkingHeadModel(bundle_dir)
        result = run_suite(model, data, p.evaluate, Storage(p.runtime.s3))
    except (BundleError, ValueError, FileNotFoundError) as err:
        fail(f"{err} (--bundle / paths.bundle, --preprocessed / paths.preprocessed; run `dvc repro` first)",
             EXIT_CONFIG)
    meta = {"bundle": str(bundle_dir), "bundle id": model.bundle.id, "preprocessed": str(data),
            "tier": p.evaluate.profile}
    report = write_outputs(result, metrics_file, plots, folder, model.fps, model.sample_rate, meta)
    if track:
        record(p, result.metrics, metrics_file, folder, meta)
    typer.echo(headline(result.metrics, metrics_file, report))


def targets(p: Params, out: Path | None) -> tuple[Path, Path, Path]:
    """Where the metrics JSON, the plots CSVs and the report folder go."""
    if out is not None:
        return out / "evaluate.json", out / "plots", out
    return Path(p.paths.metrics) / "evaluate.json", Path(p.paths.plots) / "evaluate", Path(p.paths.evaluate)


def numbers(flat: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of flattened metrics (MLflow takes nothing else)."""
    return {k: float(v) for k, v in flat.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def record(p: Params, metrics: dict[str, Any], metrics_file: Path, folder: Path, meta: dict[str, str]) -> None:
    """The evaluation's MLflow run under the pipeline's parent: every number, the unavailable ones as tags with their
    reasons, and the report folder."""
    from thpad.pipelines.evaluate.summary import flatten
    from thpad.storage.tracking import open_stage_run

    flat = flatten(metrics)
    reasons = {f"thpad.unavailable.{k}": v[:250] for k, v in flat.items()
               if isinstance(v, str) and v.startswith("unavailable")}
    with open_stage_run(p.runtime.tracking, "evaluate", {"evaluate": dataclasses.asdict(p.evaluate)},
                        {**reasons, "thpad.bundle.id": meta["bundle id"]}) as run:
        run.log_metrics(numbers(flat), step=0)
        run.log_artifact(metrics_file)
        run.log_artifact(folder, "report")


def headline(m: dict[str, Any], metrics_file: Path, report: Path) -> str:
    """What the stage prints: a few figures and where the rest is."""
    def show(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    g = m["identity"]["guidance"]
    lines = [f"evaluate: {m['run']['clips']} clips ({', '.join(m['run']['splits'])}), {m['run']['total_seconds']} s",
             "  measurer r: " + ", ".join(f"{k} {show(v)}" for k, v in m["measurer"]["r"].items()),
             f"  f_nl FID_fm s=0 {show(m['table1']['s0']['fid_fm']) if 's0' in m['table1'] else '-'}, "
             f"s={g:g} {show(m['table1_rescaled'].get(f's{g:g}', {}).get('fid_fm'))} (the bundle's rescale); "
             f"AR {show(m['ar']['f_nl']['fid_fm'])}",
             f"  reconstruction L1 {show(m['reconstruction']['l1'])} (copying the photo: "
             f"{show(m['reconstruction']['copy_photo']['l1'])}); identity same-person share "
             f"{show(m['identity']['same_person_share'])}; lip r {show(m['lip']['lip_r'])}",
             f"  metrics: {metrics_file}; report: {report}"]
    return "\n".join(lines)
