"""Stage ``bundle``: gathers what generation needs into one verified folder (storage/bundle.py describes the layout).

The talking head of stage 2 carries every network the generator runs (E_id, E_v with its heads, the frozen E_a of
stage 1, MLP_a2l, G), so stage 1's snapshot is not copied. Beside the snapshots, ``bundle.json`` records what a
consumer without ``params.yaml`` must repeat exactly: the preprocessing (alignment template, mel, fps, sample
rate, face detection) and the validated sampling defaults of the diffusion prior.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thpad.codec import to_dict
from thpad.models.motion_prior import build_prior, is_diffusion
from thpad.models.talking_head import build_talking_head
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.train.prior.config import PriorValidationParams
from thpad.storage.bundle import MANIFEST, SCHEMA_VERSION, atomic_dir, md5_file, read_bundle, sha256_file
from thpad.storage.checkpoint import SnapshotError, load_snapshot, read_snapshot
from thpad.storage.files import atomic_write_json

log = logging.getLogger(__name__)
FILE_NAMES = {"talking_head": "talking_head.pt", "prior": "prior.pt", "prior_ar": "prior_ar.pt"}


@dataclass(frozen=True)
class BundleSources:
    """The snapshots a bundle is made from: stage 2's talking head and the two priors (local paths)."""

    talking_head: str
    prior: str
    prior_ar: str


def sampling_defaults(validation: PriorValidationParams) -> dict[str, Any]:
    """The diffusion prior's validated sampling settings, the defaults of every consumer of the bundle."""
    return {"prior": "diffusion", "sampler": validation.sampler, "num_steps": validation.num_steps,
            "guidance": validation.guidance, "guidance_rescale": validation.guidance_rescale, "eta": validation.eta}


def preprocessing_settings(cfg: PreprocessConfig) -> dict[str, Any]:
    """What generation must repeat exactly: the alignment template, the mel, the rates and face detection."""
    return {"fps": cfg.audio.fps, "sample_rate": cfg.audio.sample_rate, "audio": to_dict(cfg.audio),
            "align": to_dict(cfg.align), "track": to_dict(cfg.track)}


def check_compatible(configs: Mapping[str, Mapping[str, Any]]) -> None:
    """Every snapshot rebuilds, the priors are of the right kind, and their widths fit the talking head.

    Raises:
        ValueError: naming the snapshot that does not fit.
    """
    head = build_talking_head(configs["talking_head"]).cfg
    for role, diffusion in (("prior", True), ("prior_ar", False)):
        config = configs[role]
        if is_diffusion(config) != diffusion:
            kind = "the diffusion prior (train_prior)" if diffusion else "the AR prior (train_prior_ar)"
            raise ValueError(f"the {role} snapshot is not {kind}")
        denoiser = build_prior(config).cfg
        if (denoiser.nl_dim, denoiser.audio_dim) != (head.nl_dim, head.audio.out_dim):
            raise ValueError(f"the {role} snapshot reads f_nl {denoiser.nl_dim} / f_a {denoiser.audio_dim} wide, the "
                             f"talking head gives {head.nl_dim} / {head.audio.out_dim}: retrain the priors on this "
                             "talking head's features")


def build_bundle(sources: BundleSources, out: str | os.PathLike, preprocess: PreprocessConfig,
                 validation: PriorValidationParams) -> dict[str, Any]:
    """Write the bundle folder ``out`` (replaced whole: built beside it, then renamed) and return its manifest.

    Raises:
        FileNotFoundError: a source snapshot is missing.
        ValueError: a source is not a snapshot of the expected network, or the networks do not fit each other.
    """
    out = Path(out)
    configs, files, inputs = {}, {}, {}
    for role, source in vars(sources).items():
        if not Path(source).is_file():
            raise FileNotFoundError(f"no {role} snapshot at {source}")
        try:
            configs[role] = read_snapshot(source)[0]
        except SnapshotError as err:
            raise ValueError(f"{source}: {err}") from err
        inputs[role] = {"path": Path(source).name, "md5": md5_file(source)}
    check_compatible(configs)
    load_snapshot(sources.talking_head, build_talking_head)  # the weights fit the config (fails early, names it)
    with atomic_dir(out) as tmp:
        for role, source in vars(sources).items():
            shutil.copyfile(source, tmp / FILE_NAMES[role])
            files[role] = {"path": FILE_NAMES[role], "sha256": sha256_file(tmp / FILE_NAMES[role]),
                           "bytes": (tmp / FILE_NAMES[role]).stat().st_size}
        manifest = {"schema_version": SCHEMA_VERSION, "files": files, "networks": configs,
                    "preprocessing": preprocessing_settings(preprocess), "sampling": sampling_defaults(validation),
                    "inputs": inputs}
        atomic_write_json(tmp / MANIFEST, manifest)
        read_bundle(tmp)  # what consumers will do: every hash and snapshot checked once more
    log.info("bundle: %s (%s)", out, ", ".join(f"{r} {f['bytes'] / 1e6:.1f} MB" for r, f in files.items()))
    return manifest
