"""The loader for ``params.yaml``: the single source of truth, mapped onto frozen typed dataclasses.

Loading is strict: every section and key must be present and no unknown key is accepted, so a typo
in ``params.yaml`` or in ``dvc exp run -S key=value`` fails at once with the dotted key named.
Sections are added here as stages are added (one section per stage). It is the composition root of the
configs, so it lives with the stages: it imports every pipeline's config class, which nothing below may do.

Shared settings are written once in the file and copied into the stage configs here:

- ``paths``: every folder and model file of the DAG, once. A stage's path fields (``train_prior.features``,
  ``train_prior.out``, ...) are filled from it (``PATH_FIELDS``); ``dvc.yaml`` names the same keys as its deps
  and outs.
- ``runtime``: how and where the work runs (Ray, MLflow, S3 client settings, the worker counts of the stages
  whose results do not depend on them). No result depends on these, so no stage lists ``runtime`` among its DVC
  params and changing it reruns nothing (``RUNTIME_FIELDS``, ``WORKER_FIELDS``).

A stage section that sets one of these filled-in keys itself is refused, naming where the key is written.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from thpad.codec import ConfigError, from_dict, to_dict
from thpad.pipelines.corpus.config import CorpusConfig
from thpad.pipelines.evaluate.config import EvaluateConfig
from thpad.pipelines.features.config import FeaturesConfig
from thpad.pipelines.generate.config import DemoConfig, GenerateConfig
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.submit_config import SubmitConfig
from thpad.pipelines.train.contrastive.config import ContrastiveConfig
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.prior.config import PriorARConfig, PriorConfig
from thpad.stages.runtime import RuntimeConfig

DEFAULT_PARAMS = Path("params.yaml")


@dataclass(frozen=True)
class PathsConfig:
    """Every folder and file of the DAG (local paths or ``s3://`` URIs), each written once.

    ``sample_corpus`` is where the ``sample_corpus`` stage writes; ``corpus`` is what ``preprocess`` reads (the
    same folder in the embedded default, VoxCeleb2 at paper scale).
    """

    sample_corpus: str
    corpus: str
    preprocessed: str
    contrastive: str
    disentangle: str
    features: str
    prior: str
    prior_ar: str
    bundle: str
    demo: str
    evaluate: str
    metrics: str
    plots: str
    work: str


# Stage config field -> the ``paths`` key it is filled from.
PATH_FIELDS: dict[str, dict[str, str]] = {
    "preprocess": {"source": "corpus", "out": "preprocessed"},
    "train_contrastive": {"shards": "preprocessed", "work": "work", "out": "contrastive"},
    "train_disentangle": {"contrastive": "contrastive", "shards": "preprocessed", "work": "work",
                          "out": "disentangle"},
    "extract_features": {"disentangle": "disentangle", "shards": "preprocessed", "out": "features"},
    "train_prior": {"features": "features", "work": "work", "out": "prior"},
    "train_prior_ar": {"features": "features", "work": "work", "out": "prior_ar"},
}
# Stage config fields filled from the ``runtime`` block of the same name.
RUNTIME_FIELDS: dict[str, tuple[str, ...]] = {
    "preprocess": ("s3", "ray"),
    "train_contrastive": ("tracking", "s3", "ray"),
    "train_disentangle": ("tracking", "s3", "ray"),
    "extract_features": ("tracking", "s3", "ray"),
    "train_prior": ("tracking", "s3", "ray"),
    "train_prior_ar": ("tracking", "s3", "ray"),
}
# Sections whose ``workers`` field is ``runtime.workers.<section>``.
WORKER_FIELDS = ("corpus", "preprocess", "extract_features")


@dataclass(frozen=True)
class Params:
    """The whole of ``params.yaml``, with the shared settings copied into the stage sections."""

    profile: str
    paths: PathsConfig
    runtime: RuntimeConfig
    corpus: CorpusConfig
    preprocess: PreprocessConfig
    train_contrastive: ContrastiveConfig
    train_disentangle: DisentangleConfig
    extract_features: FeaturesConfig
    train_prior: PriorConfig
    train_prior_ar: PriorARConfig
    evaluate: EvaluateConfig
    generate: GenerateConfig
    demo: DemoConfig
    submit: SubmitConfig


def _filled_in() -> dict[str, dict[str, str]]:
    """Per section, each filled-in field and where the file writes it (for messages and ``params_dict``)."""
    out: dict[str, dict[str, str]] = {}
    for section, fields in PATH_FIELDS.items():
        out.setdefault(section, {}).update({f: f"paths.{key}" for f, key in fields.items()})
    for section, fields in RUNTIME_FIELDS.items():
        out.setdefault(section, {}).update({f: f"runtime.{f}" for f in fields})
    for section in WORKER_FIELDS:
        out.setdefault(section, {})["workers"] = f"runtime.workers.{section}"
    return out


def compose(data: Mapping[str, Any]) -> dict[str, Any]:
    """The file's mapping with ``paths`` and ``runtime`` copied into the stage sections (see the module doc).

    Raises:
        ConfigError: a stage section sets a filled-in key itself.
    """
    out = copy.deepcopy(dict(data))
    paths, runtime = out.get("paths"), out.get("runtime")
    if not isinstance(paths, Mapping) or not isinstance(runtime, Mapping):
        return out  # from_dict names the missing or malformed section
    for section, fields in _filled_in().items():
        body = out.get(section)
        if not isinstance(body, dict):
            continue
        for field_name, source in fields.items():
            if field_name in body:
                raise ConfigError(f"'{section}.{field_name}' is written once, as '{source}'; remove it from "
                                  f"'{section}'")
            value = _lookup(out, source)
            if value is not None:
                body[field_name] = copy.deepcopy(value)
    return out


def _lookup(data: Mapping[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def params_dict(params: Params) -> dict[str, Any]:
    """The file's form of ``params``: ``to_dict`` without the filled-in copies, so that
    ``load_params`` of its YAML gives ``params`` back."""
    data = to_dict(params)
    for section, fields in _filled_in().items():
        for field_name in fields:
            data[section].pop(field_name, None)
    return data


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate a params file.

    Args:
        path: a YAML file (``params.yaml`` or one of ``profiles/*.yaml``).
    Returns:
        The typed ``Params``, stage sections completed from ``paths`` and ``runtime``.
    Raises:
        ConfigError: the file is missing, not YAML, or has an unknown, missing, mistyped or repeated key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found (run from the repository root or pass --params)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {err}") from err
    try:
        return from_dict(Params, compose(data or {}), require_all=True)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def dump_json(cfg: Any) -> str:
    """The resolved config as indented JSON (what ``--dry-run`` prints and runs record)."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
