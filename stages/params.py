"""The loader for ``params.yaml``: the single source of truth, mapped onto frozen typed dataclasses.

Loading is strict: every section and key must be present and no unknown key is accepted, so a typo
in ``params.yaml`` or in ``dvc exp run -S key=value`` fails at once with the dotted key named.
Sections are added here as stages are added (one section per stage). It is the composition root of the
configs, so it lives with the stages: it imports every pipeline's config class, which nothing below may do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from thpad.codec import ConfigError, from_dict, to_dict
from thpad.pipelines.corpus.config import CorpusConfig
from thpad.pipelines.features.config import FeaturesConfig
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.submit_config import SubmitConfig
from thpad.pipelines.train.contrastive.config import ContrastiveConfig
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.prior.config import PriorARConfig, PriorConfig

DEFAULT_PARAMS = Path("params.yaml")


@dataclass(frozen=True)
class PathsConfig:
    """Where the embedded default keeps its folders (local paths or ``s3://`` URIs)."""

    sample_corpus: str
    work: str


@dataclass(frozen=True)
class Params:
    """The whole of ``params.yaml``."""

    profile: str
    paths: PathsConfig
    corpus: CorpusConfig
    preprocess: PreprocessConfig
    train_contrastive: ContrastiveConfig
    train_disentangle: DisentangleConfig
    extract_features: FeaturesConfig
    train_prior: PriorConfig
    train_prior_ar: PriorARConfig
    submit: SubmitConfig


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    """Read and validate a params file.

    Args:
        path: a YAML file (``params.yaml`` or one of ``profiles/*.yaml``).
    Returns:
        The typed ``Params``.
    Raises:
        ConfigError: the file is missing, not YAML, or has an unknown, missing or mistyped key.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found (run from the repository root or pass --params)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"params file {path} is not valid YAML: {err}") from err
    try:
        return from_dict(Params, data or {}, require_all=True)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def dump_json(cfg: Any) -> str:
    """The resolved config as indented JSON (what ``--dry-run`` prints and runs record)."""
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)
