"""Stage 2's inputs: the stage-1 snapshot it starts E_a and E_v from, and the optional pretrained weight files (paths
made absolute for Ray's workers), checked before any worker starts.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from thpad.codec import to_dict
from thpad.models.contrastive_net import ContrastiveNet, build_net
from thpad.models.talking_head import TALKING_HEAD_PRESETS
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.storage.checkpoint import SnapshotError, read_snapshot
from thpad.storage.manifest import manifest_uri, required_shards
from thpad.storage.uri import Storage, is_s3


class StageInputError(ValueError):
    """An input of the stage (stage-1 snapshot, weights file) is missing or does not fit the config."""


def read_contrastive(uri: str, storage: Storage, model: str) -> ContrastiveNet:
    """Stage 1's network from its snapshot, after checking that its E_a and E_v are ``model``'s.

    Raises:
        StageInputError: the file is missing, is not a stage-1 snapshot, or was trained for another preset.
    """
    fix = "run `thpad train-contrastive` (or `dvc repro train_contrastive`) first, or fix paths.contrastive"
    if not storage.exists(uri):
        raise StageInputError(f"no stage-1 snapshot at {uri}: {fix}")
    try:
        config, state = read_snapshot(storage.read_bytes(uri))
        preset = TALKING_HEAD_PRESETS[model]
        same = config["audio"] == to_dict(preset.audio) and config["visual"] == to_dict(preset.visual)
    except (KeyError, TypeError, SnapshotError) as err:
        raise StageInputError(f"{uri} is not a train_contrastive snapshot ({err!r}): {fix}") from err
    if not same:
        raise StageInputError(f"{uri} holds E_a/E_v of another model preset than train_disentangle.model={model!r}: "
                              f"retrain train_contrastive with model {model!r}, or set train_disentangle.model to its "
                              "preset")
    net = build_net(config)
    net.load_state_dict(state, strict=True)
    return net


def weight_files(cfg: DisentangleConfig) -> dict[str, str]:
    """The optional pretrained weight files the config names (field -> path)."""
    files = {"identity_weights": cfg.identity_weights, "feature_losses.vgg_weights": cfg.feature_losses.vgg_weights,
             "feature_losses.gaze_weights": cfg.feature_losses.gaze_weights}
    return {name: path for name, path in files.items() if path}


def with_absolute_weight_files(cfg: DisentangleConfig) -> DisentangleConfig:
    """``cfg`` with its local weight files made absolute (Ray workers run elsewhere), after checking they exist."""
    for name, path in weight_files(cfg).items():
        if is_s3(path) or not Path(path).is_file():
            raise StageInputError(f"train_disentangle.{name}: no weights file at {path} (give a local torchvision "
                                  "state-dict file, or null)")
    def resolve(path: str | None) -> str | None:
        return str(Path(path).resolve()) if path else path

    losses = dataclasses.replace(cfg.feature_losses, vgg_weights=resolve(cfg.feature_losses.vgg_weights),
                                 gaze_weights=resolve(cfg.feature_losses.gaze_weights))
    return dataclasses.replace(cfg, identity_weights=resolve(cfg.identity_weights), feature_losses=losses)


def check_inputs(cfg: DisentangleConfig) -> DisentangleConfig:
    """Check the stage's inputs before Ray starts: the stage-1 snapshot (and its preset), the preprocessed data
    and the optional weight files. Returns ``cfg`` with the weight files made absolute.

    Raises:
        StageInputError: naming the missing or mismatched input and the fix.
    """
    storage = Storage(cfg.s3)
    read_contrastive(cfg.contrastive, storage, cfg.model)
    if not storage.exists(manifest_uri(cfg.shards)):
        raise StageInputError(f"no preprocessed data at {cfg.shards} (no manifest.parquet): run `thpad preprocess` "
                              "(or `dvc repro preprocess`) first, or fix paths.preprocessed")
    for split in ("train", "val"):
        try:
            required_shards(cfg.shards, split, storage, "train_disentangle")
        except ValueError as err:
            raise StageInputError(str(err)) from err
    return with_absolute_weight_files(cfg)
