"""The ``thpad`` command: one subcommand per stage and tool, each with ``--help``.

A subcommand's module is imported only when that subcommand runs (or when ``thpad --help`` lists them all): the
training and generation stages import torch and MLflow, ~8 s that ``thpad preprocess`` would otherwise pay on
every start. ``app`` (for tests and ``typer``'s runner) is the whole command, built on first access.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

import typer

from thpad.stages.common import setup_logging

# subcommand -> (module below thpad.stages, function); the function's docstring is its help.
COMMANDS: dict[str, tuple[str, str]] = {
    "sample-corpus": ("sample_corpus", "sample_corpus"),
    "preprocess": ("preprocess", "preprocess"),
    "train-contrastive": ("train_contrastive", "train_contrastive"),
    "train-disentangle": ("train_disentangle", "train_disentangle"),
    "extract-features": ("extract_features", "extract_features"),
    "train-prior": ("train_prior", "train_prior"),
    "train-prior-ar": ("train_prior_ar", "train_prior_ar"),
    "bundle": ("bundle", "bundle"),
    "evaluate": ("evaluate", "evaluate"),
    "demo": ("demo", "demo"),
    "generate": ("generate", "generate"),
    "generate-batch": ("generate_batch", "generate_batch"),
    "submit": ("submit", "submit"),
    "params": ("show_params", "show_params"),
    "models": ("show_models", "show_models"),
}


def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    setup_logging(verbose)


def build_app(names: Iterable[str] = tuple(COMMANDS)) -> typer.Typer:
    """The ``thpad`` app with the subcommands ``names`` (all by default), importing their modules."""
    app = typer.Typer(
        name="thpad",
        help="Talking heads with probabilistic audio-to-visual diffusion priors: data, training, generation.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.callback()(_root)
    for name in names:
        module_name, function = COMMANDS[name]
        module = importlib.import_module(f"thpad.stages.{module_name}")
        app.command(name, epilog=getattr(module, "EPILOG", None))(getattr(module, function))
    return app


def requested(argv: list[str]) -> list[str]:
    """The one subcommand ``argv`` runs, when it names a known one (the root takes flags only), else all."""
    words = [arg for arg in argv if not arg.startswith("-")]
    return words[:1] if words and words[0] in COMMANDS else list(COMMANDS)


def __getattr__(name: str) -> typer.Typer:
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point."""
    build_app(requested(sys.argv[1:]))()


if __name__ == "__main__":
    main()
