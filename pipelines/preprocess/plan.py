"""Deterministic split and shard assignment, done before any Ray work so that reruns and resumed
runs put every clip in the same shard.

Splits are by identity group (the identity, or for the sample corpus its source portrait, so that
variants of one portrait never straddle splits): the official ``test`` folder is the test split; dev
groups are ordered by a hash of (seed, group) and the first ``ceil(val_fraction * groups)`` go to val.

``val_by: clip`` instead holds out clips of the training identities: within each dev identity, clips are
ordered by a hash of (seed, clip key) and ``round(val_fraction * n)`` of its n clips go to val, keeping at
least one for train. The sample corpus uses it (default profile): with only four dev portraits, a val
portrait never seen in training measures generalisation to a new face from three faces, while held-out
clips measure what the stages must learn (sync, motion); the test split stays identity-disjoint.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

from thpad.storage.voxceleb import SourceClip

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitConfig:
    """How clips are split and sharded."""

    seed: int
    val_fraction: float
    clips_per_shard: int
    min_shards_per_split: int
    val_by: str = "group"  # "group": whole identity groups go to val; "clip": held-out clips of each identity

    def __post_init__(self) -> None:
        if self.val_by not in ("group", "clip"):
            raise ValueError(f"split.val_by must be 'group' or 'clip', got {self.val_by!r}")


@dataclass(frozen=True)
class ShardPlan:
    """One shard to write: its split, index, file name and clips (sorted by key)."""

    split: str
    index: int
    clips: tuple[SourceClip, ...]

    @property
    def name(self) -> str:
        """``{split}-NNNNNN.tar``."""
        return f"{self.split}-{self.index:06d}.tar"


def _group_rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def _val_group_clips(clips: Sequence[SourceClip], dev_groups: Sequence[str], cfg: SplitConfig) -> set[str]:
    """Keys of the dev clips whose whole identity group goes to val."""
    num_val = math.ceil(cfg.val_fraction * len(dev_groups)) if cfg.val_fraction > 0 else 0
    val_groups = set(dev_groups[:num_val])
    return {c.key for c in clips if c.official_split == "dev" and c.group in val_groups}


def _val_clips(clips: Sequence[SourceClip], cfg: SplitConfig) -> set[str]:
    """Keys of the held-out dev clips: ``round(val_fraction * n)`` of each identity's n clips, at most n - 1."""
    by_identity: dict[str, list[str]] = {}
    for clip in clips:
        if clip.official_split == "dev":
            by_identity.setdefault(clip.identity, []).append(clip.key)
    held = set()
    for keys in by_identity.values():
        num_val = min(round(cfg.val_fraction * len(keys)), len(keys) - 1)
        held.update(sorted(keys, key=lambda k: _group_rank(cfg.seed, k))[:num_val])
    return held


def assign_splits(clips: Sequence[SourceClip], cfg: SplitConfig) -> dict[str, str]:
    """Map each clip key to ``train``, ``val`` or ``test``. A split may come out empty (a dev folder without
    ``test/``, or too few identities for val): ``empty_splits`` names them, and the stages that need one refuse."""
    dev_groups = sorted({c.group for c in clips if c.official_split == "dev"}, key=lambda g: _group_rank(cfg.seed, g))
    val_keys = _val_clips(clips, cfg) if cfg.val_by == "clip" else _val_group_clips(clips, dev_groups, cfg)
    splits = {}
    for clip in clips:
        if clip.official_split == "test":
            splits[clip.key] = "test"
        else:
            splits[clip.key] = "val" if clip.key in val_keys else "train"
    return splits


def empty_splits(clips: Sequence[SourceClip], splits: dict[str, str], cfg: SplitConfig) -> dict[str, str]:
    """Each split that ``assign_splits`` left without a clip, with why and what would fill it."""
    dev = [c for c in clips if c.official_split == "dev"]
    groups = len({c.group for c in dev})
    why = {
        "train": f"the corpus has {len(dev)} dev clip(s); add a dev/ folder with clips",
        "val": (f"{groups} dev identity group(s), {len(dev)} dev clip(s), val_fraction={cfg.val_fraction}, "
                f"val_by={cfg.val_by!r}; add identities or clips, or raise preprocess.split.val_fraction"),
        "test": "the corpus has no test/ folder (VoxCeleb2's test set is a separate download); add one",
    }
    present = set(splits.values())
    return {split: why[split] for split in SPLITS if split not in present}


def plan_shards(clips: Sequence[SourceClip], splits: dict[str, str], cfg: SplitConfig) -> list[ShardPlan]:
    """Chunk each split's clips (sorted by key) into at least ``min_shards_per_split`` shards."""
    plans = []
    for split in SPLITS:
        members = sorted((c for c in clips if splits[c.key] == split), key=lambda c: c.key)
        count = max(cfg.min_shards_per_split, math.ceil(len(members) / cfg.clips_per_shard))
        count = min(count, len(members))
        for index in range(count):
            chunk = tuple(members[index::count])
            plans.append(ShardPlan(split, index, chunk))
    return plans
