"""DVC stage ``bundle``: stage 2's talking head and both priors gathered into one verified folder for generation."""

from __future__ import annotations

from pathlib import Path

import typer

from thpad.pipelines.generate.bundle import BundleSources, build_bundle
from thpad.stages.common import DRY_RUN_OPTION, EXIT_CONFIG, PARAMS_OPTION, fail, print_dry_run, read_params
from thpad.stages.params import Params


def bundle(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Write paths.bundle: the snapshots of paths.disentangle, paths.prior and paths.prior_ar with bundle.json (their
    sha256, the networks' configs, the preprocessing generation repeats, the validated sampling defaults).

    Example: thpad bundle --params params.yaml"""
    p = read_params(params)
    sources = BundleSources(talking_head=p.paths.disentangle, prior=p.paths.prior, prior_ar=p.paths.prior_ar)
    if dry_run:
        print_dry_run(sources)
        return
    try:
        manifest = build_bundle(sources, p.paths.bundle, p.preprocess, p.train_prior.validation)
    except (FileNotFoundError, ValueError) as err:
        fail(f"{err} (paths.disentangle, paths.prior, paths.prior_ar; run `dvc repro` for the missing stage)",
             EXIT_CONFIG)
    record_bundle(p, manifest)
    sampling = manifest["sampling"]
    typer.echo(f"bundle: {p.paths.bundle} (defaults: {sampling['prior']} prior, {sampling['sampler']}-"
               f"{sampling['num_steps']}, guidance {sampling['guidance']:g}, rescale {sampling['guidance_rescale']:g})")


def record_bundle(p: Params, manifest: dict) -> None:
    """The bundle's MLflow run under the pipeline's parent: its manifest, and tags for its files' hashes (the git
    commit is tagged by the tracker; it stays out of bundle.json, which is a pure function of its inputs)."""
    from thpad.storage.bundle import bundle_id
    from thpad.storage.tracking import open_stage_run

    tags = {f"thpad.bundle.{role}_sha256": entry["sha256"] for role, entry in manifest["files"].items()}
    tags["thpad.bundle.id"] = bundle_id(p.paths.bundle)
    with open_stage_run(p.runtime.tracking, "bundle", {"sampling": manifest["sampling"]}, tags) as run:
        run.log_artifact(Path(p.paths.bundle) / "bundle.json")
