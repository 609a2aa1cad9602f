"""``thpad models``: build every network of a preset, run one forward pass, print sizes and shapes."""

from __future__ import annotations

import json

import typer

from thpad.models.summary import summarize


def _row(name: str, info: dict) -> str:
    fmt = lambda shapes: ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items())  # noqa: E731
    return f"| {name} | {info['params']:,} | {fmt(info['inputs'])} | {fmt(info['outputs'])} |"


def show_models(
    preset: str = typer.Option("tiny", help="Model preset: paper (the paper's sizes) or tiny (CPU tests)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object keyed by module."),
) -> None:
    """Build every network of PRESET on CPU, run one forward pass at batch size 1, and print each
    module's parameter count and input and output shapes."""
    if preset not in ("paper", "tiny"):
        raise typer.BadParameter(f"unknown preset {preset!r}; use paper or tiny", param_hint="--preset")
    summary = summarize(preset)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"| module ({preset}) | parameters | inputs | outputs |\n| --- | ---: | --- | --- |")
    for name, info in summary.items():
        typer.echo(_row(name, info))
