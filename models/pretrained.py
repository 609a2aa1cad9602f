"""Optional pretrained weights for the torchvision-based networks, loaded strictly from a local file.

The paper starts E_id (ResNeXt50), E_v (MobileNetV2, LPD-style), the VGG19 loss network and the gaze
encoder (L2CS-Net) from pretrained weights (TH-PAD supplement §I.2). thpad never downloads anything:
each network takes an optional weights file in torchvision's key layout. Every module declares a
``PretrainedSpec``: which file keys it may drop (e.g. a classifier head) and which of its own keys
are new and stay randomly initialised (e.g. the 1×1 identity-map conv). Any other missing,
unexpected or mis-shaped key is an error naming the key and the file.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

logger = logging.getLogger(__name__)

# BatchNorm's step counter is absent from older torchvision files; it is never worth an error.
_ALWAYS_NEW = ("*num_batches_tracked",)

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PretrainedSpec:
    """How a weights file maps onto a module: a key prefix, droppable file keys and new module keys."""

    prefix: str = ""  # module key = prefix + file key (e.g. "backbone.")
    ignore: tuple[str, ...] = ()  # fnmatch patterns of FILE keys that may be dropped
    new: tuple[str, ...] = ()  # fnmatch patterns of MODULE keys that may be absent from the file


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def _read_state_dict(path: str) -> Mapping[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a plain state dict (key -> tensor) in torchvision layout")
    return state


def match_state_dict(
    own: Mapping[str, torch.Tensor], loaded: Mapping[str, torch.Tensor], spec: PretrainedSpec, source: str
) -> dict[str, torch.Tensor]:
    """Check ``loaded`` against ``own`` under ``spec`` and return the entries to copy (module keys).

    Args:
        own: the module's state dict.
        loaded: the file's state dict.
        spec: the module's declaration of prefix, ignorable and new keys.
        source: the file name, for error messages.
    Returns:
        A dict from module key to tensor, every entry of the right shape.
    """
    picked: dict[str, torch.Tensor] = {}
    for file_key, value in loaded.items():
        if _matches(file_key, spec.ignore):
            continue
        key = spec.prefix + file_key
        if key not in own:
            raise ValueError(f"{source}: unexpected key '{file_key}' (module has no '{key}')")
        if tuple(own[key].shape) != tuple(value.shape):
            raise ValueError(
                f"{source}: key '{file_key}' has shape {tuple(value.shape)}, "
                f"module expects {tuple(own[key].shape)}"
            )
        picked[key] = value
    for key in own:
        if key not in picked and not _matches(key, spec.new + _ALWAYS_NEW):
            raise ValueError(f"{source}: missing key '{key[len(spec.prefix):]}' (module key '{key}')")
    return picked


def load_pretrained(module: nn.Module, path: str | os.PathLike | None, spec: PretrainedSpec) -> bool:
    """Load an optional weights file into ``module`` (in place), strictly.

    Args:
        module: the network to fill.
        path: a local weights file (``torch.load(..., weights_only=True)``), or None for random init.
        spec: the module's ``PretrainedSpec``.
    Returns:
        True if weights were loaded, False if the module keeps its random initialisation.
    """
    name = type(module).__name__
    if path is None:
        logger.info("%s: no weights file configured; keeping random initialisation", name)
        return False
    source = os.fspath(path)
    own = module.state_dict()
    picked = match_state_dict(own, _read_state_dict(source), spec, source)
    merged = {k: picked.get(k, v) for k, v in own.items()}
    module.load_state_dict(merged, strict=True)
    logger.info("%s: loaded %d tensors from %s", name, len(picked), source)
    return True


def imagenet_normalize(images: torch.Tensor) -> torch.Tensor:
    """Map images from [-1, 1] to the ImageNet mean/std normalisation torchvision weights expect.

    Args:
        images: (B, 3, H, W) in [-1, 1].
    Returns:
        (B, 3, H, W) normalised images.
    """
    mean = torch.tensor(_IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    std = torch.tensor(_IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std  # (B, 3, H, W)
