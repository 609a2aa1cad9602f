"""The model bundle on disk: one folder holding every snapshot generation needs and ``bundle.json``, its manifest.

Layout (schema version ``SCHEMA_VERSION``)::

    BUNDLE/bundle.json        schema_version, files {role: {path, sha256, bytes}}, networks {role: config},
                              preprocessing (alignment, mel, fps, sample rate, face detection), sampling defaults,
                              inputs (md5 of the snapshots it was made from, as DVC records them)
    BUNDLE/talking_head.pt    stage 2's snapshot (E_id, E_v and heads, E_a, MLP_a2l, G)
    BUNDLE/prior.pt           the diffusion prior's snapshot
    BUNDLE/prior_ar.pt        the AR prior's snapshot

``read_bundle`` is the one way in: it refuses a folder whose manifest is missing or of another schema, or any file
whose sha256 differs from the manifest, naming the file. The bundle is a pure function of its inputs (no time, no
commit, no absolute path in ``bundle.json``), so DVC sees the same hash for the same inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from thpad.storage.checkpoint import SnapshotError, read_snapshot
from thpad.storage.files import temp_sibling

SCHEMA_VERSION = 1
MANIFEST = "bundle.json"
ROLES = ("talking_head", "prior", "prior_ar")


class BundleError(ValueError):
    """A bundle folder is missing, incomplete, of another schema version, or altered."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The md5 hex digest of a file: what DVC records for a file out in ``dvc.lock``."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary sibling folder of ``path`` to fill (the bundle, the demo); when the block ends without an error it
    replaces ``path`` whole, and in every case the temporary folder is gone afterwards."""
    path = Path(path)
    tmp = temp_sibling(path)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bundle_id(root: str | os.PathLike) -> str:
    """A bundle's short id: the first 12 hex digits of its manifest file's sha256."""
    return sha256_file(Path(root) / MANIFEST)[:12]


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, its manifest, and the snapshots' configs and weights (CPU tensors)."""

    root: Path
    manifest: dict[str, Any]
    snapshots: dict[str, tuple[dict[str, Any], dict[str, torch.Tensor]]]

    @property
    def id(self) -> str:
        """The bundle's short id (``bundle_id``)."""
        return bundle_id(self.root)


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """``bundle.json`` of a bundle folder, checked for its schema version (nothing else read)."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{root} is not a thpad bundle: no {MANIFEST} (build one with `dvc repro bundle`, or pass "
                          "--model with a bundle folder)")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path} is not valid JSON ({err}); rebuild the bundle with `dvc repro bundle`") from err
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise BundleError(f"{path}: schema version {version!r}, this thpad reads {SCHEMA_VERSION}; rebuild the bundle "
                          "with this version (`dvc repro bundle`)")
    missing = [role for role in ROLES if role not in manifest.get("files", {})]
    if missing:
        raise BundleError(f"{path}: no entry for {', '.join(missing)} in 'files'")
    return manifest


def verify_file(root: Path, role: str, entry: dict[str, Any]) -> Path:
    """The path of a bundle file after checking that it exists and its sha256 matches the manifest."""
    path = root / entry["path"]
    if Path(entry["path"]).is_absolute() or ".." in Path(entry["path"]).parts:
        raise BundleError(f"{root / MANIFEST}: the {role} file {entry['path']!r} lies outside the bundle")
    if not path.is_file():
        raise BundleError(f"{path} is missing from the bundle (the {role} snapshot); rebuild it with "
                          "`dvc repro bundle`")
    if sha256_file(path) != entry["sha256"]:
        raise BundleError(f"{path} does not match the sha256 in {MANIFEST}: the file was altered or replaced; "
                          "rebuild the bundle with `dvc repro bundle`")
    return path


def read_bundle(root: str | os.PathLike) -> Bundle:
    """Read and verify a bundle folder: schema version, every file's sha256, every snapshot readable.

    Raises:
        BundleError: naming the file and the fix.
    """
    root = Path(root)
    manifest = read_manifest(root)
    snapshots = {}
    for role in ROLES:
        path = verify_file(root, role, manifest["files"][role])
        try:
            snapshots[role] = read_snapshot(path)
        except SnapshotError as err:
            raise BundleError(f"{path}: {err}") from err
    return Bundle(root, manifest, snapshots)
