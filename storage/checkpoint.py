"""Snapshot files: a network's config (plain JSON data) and its state dict, never a pickled module.

Following EDM and nanoGPT, a snapshot holds enough to rebuild and run a network:
``{"config": <JSON dict>, "state_dict": {name: tensor}}``, written atomically (temporary file, then
``os.replace``) and readable with ``torch.load(..., weights_only=True)``. The caller supplies the
function that rebuilds the module from the config dict, so no class name is ever stored.

``read_snapshot`` is the one reader: every trained network is loaded through it (or ``load_snapshot``), from a
local path or from the bytes a ``Storage`` read (``s3://``). Anything that is not a snapshot raises
``SnapshotError``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thpad.storage.files import atomic_write

SNAPSHOT_PREFIX = "snapshot-"
Source = str | os.PathLike | bytes  # a local path, or a whole snapshot file's bytes
SNAPSHOT_SUFFIX = ".pt"


def snapshot_path(directory: str | os.PathLike, step: int) -> Path:
    """Return ``directory/snapshot-<step, 9 digits>.pt``, e.g. ``snapshot-000001230.pt``."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    return Path(directory) / f"{SNAPSHOT_PREFIX}{step:09d}{SNAPSHOT_SUFFIX}"


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the target folder, then rename it into place."""
    return atomic_write(path, lambda stream: torch.save(obj, stream))


def save_snapshot(path: str | os.PathLike, config: Mapping[str, Any], module: nn.Module) -> Path:
    """Save ``module``'s weights with the config that rebuilds it.

    Args:
        path: target file (see ``snapshot_path``).
        config: JSON-serialisable dict, e.g. ``models.config.to_dict(cfg)``.
        module: the network; its state dict is copied to CPU.
    Returns:
        The written path.
    """
    plain = json.loads(json.dumps(config))  # fails early on anything JSON cannot hold
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return atomic_torch_save({"config": plain, "state_dict": state}, path)


class SnapshotError(ValueError):
    """A file is not a snapshot, or its config and weights do not rebuild the network asked for."""


def read_snapshot(source: Source) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Load a snapshot's config dict and state dict (CPU tensors) without building anything.

    Args:
        source: a file written by ``save_snapshot``, or its bytes.
    Raises:
        FileNotFoundError: no file at a path ``source``.
        SnapshotError: ``torch.load`` refuses the file, or it lacks the keys 'config' and 'state_dict'.
    """
    name = "snapshot bytes" if isinstance(source, bytes) else str(source)
    try:
        payload = torch.load(io.BytesIO(source) if isinstance(source, bytes) else source, map_location="cpu",
                             weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # a truncated zip, a pickle that is not weights only, ...: all one cause
        raise SnapshotError(f"{name}: not a snapshot ({type(err).__name__}: {str(err)[:300]})") from err
    if not isinstance(payload, dict) or set(payload) != {"config", "state_dict"}:
        raise SnapshotError(f"{name}: not a snapshot (expected keys 'config' and 'state_dict')")
    return payload["config"], payload["state_dict"]


def load_snapshot(source: Source, build: Callable[[dict[str, Any]], nn.Module]) -> nn.Module:
    """Rebuild a network from a snapshot.

    Args:
        source: a file written by ``save_snapshot``, or its bytes.
        build: makes a freshly initialised module from the stored config dict.
    Returns:
        The module with the stored weights loaded (strictly), on CPU.
    Raises:
        SnapshotError: not a snapshot, or ``build`` refuses its config, or the weights do not fit the module.
    """
    config, state = read_snapshot(source)
    try:
        module = build(config)
        module.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise SnapshotError(f"the snapshot does not rebuild this network ({type(err).__name__}: {str(err)[:300]})"
                            ) from err
    return module
