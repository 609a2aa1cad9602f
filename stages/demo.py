"""DVC stage ``demo``: talking-head videos from held-out test inputs, written to paths.demo (``make run`` ends here)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from thpad.stages.common import DRY_RUN_OPTION, EXIT_CONFIG, PARAMS_OPTION, fail, print_dry_run, read_params
from thpad.stages.params import Params
from thpad.storage.uri import Storage


def demo(params: Path = PARAMS_OPTION, dry_run: bool = DRY_RUN_OPTION) -> None:
    """Generate the demo from paths.bundle and the test split: K samples side by side, a keyframe-edited video and a
    reenacted one, with a frame strip and the inputs.

    Example: thpad demo --params params.yaml"""
    from thpad.pipelines.generate.demo import build_demo, test_sources
    from thpad.pipelines.generate.model import TalkingHeadModel
    from thpad.storage.bundle import BundleError

    p = read_params(params)
    if dry_run:
        print_dry_run(p.demo)
        return
    try:
        sources = test_sources(p.paths.preprocessed, p.paths.corpus, Storage(p.runtime.s3))
        index = build_demo(TalkingHeadModel(p.paths.bundle), p.demo, sources, p.paths.demo)
    except (BundleError, ValueError, FileNotFoundError) as err:
        fail(f"{err} (paths.bundle, paths.preprocessed; run `dvc repro` first)", EXIT_CONFIG)
    out = Path(p.paths.demo)
    record_demo(p, out, index)
    typer.echo(f"demo: {index['frames']} frames from held-out inputs in {out}/: samples.mp4 ({len(index['seeds'])} "
               f"samples side by side), keyframe.mp4, reenacted.mp4, strip.png\n"
               f"  try your own: thpad generate your_photo.jpg your_speech.wav -o talk.mp4")


def record_demo(p: Params, out: Path, index: dict) -> None:
    """The demo's MLflow run under the pipeline's parent: the videos, the strip and where the inputs came from."""
    from thpad.storage.tracking import open_stage_run

    with open_stage_run(p.runtime.tracking, "demo", {"demo": dataclasses.asdict(p.demo)}) as run:
        run.log_dict(index, "index.json")
        for name in index["files"]:
            if name.endswith((".mp4", ".png")):
                run.log_artifact(out / name, "demo")
