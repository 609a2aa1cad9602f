"""The ``thpad`` command: one subcommand per stage and tool, each with ``--help``."""

from __future__ import annotations

import typer

from thpad.stages.bundle import bundle
from thpad.stages.common import setup_logging
from thpad.stages.demo import demo
from thpad.stages.evaluate import evaluate
from thpad.stages.extract_features import extract_features
from thpad.stages.generate import EPILOG, generate
from thpad.stages.generate_batch import generate_batch
from thpad.stages.preprocess import preprocess
from thpad.stages.sample_corpus import sample_corpus
from thpad.stages.show_models import show_models
from thpad.stages.show_params import show_params
from thpad.stages.submit import submit
from thpad.stages.train_contrastive import train_contrastive
from thpad.stages.train_disentangle import train_disentangle
from thpad.stages.train_prior import train_prior
from thpad.stages.train_prior_ar import train_prior_ar

app = typer.Typer(
    name="thpad",
    help="Talking heads with probabilistic audio-to-visual diffusion priors: data, training, generation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    setup_logging(verbose)


app.command("sample-corpus")(sample_corpus)
app.command("preprocess")(preprocess)
app.command("train-contrastive")(train_contrastive)
app.command("train-disentangle")(train_disentangle)
app.command("extract-features")(extract_features)
app.command("train-prior")(train_prior)
app.command("train-prior-ar")(train_prior_ar)
app.command("bundle")(bundle)
app.command("evaluate")(evaluate)
app.command("demo")(demo)
app.command("generate", epilog=EPILOG)(generate)
app.command("generate-batch")(generate_batch)
app.command("submit")(submit)
app.command("params")(show_params)
app.command("models")(show_models)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
