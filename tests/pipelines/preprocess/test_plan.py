"""Split and shard planning: groups never straddle splits, every clip in exactly one shard, empty
splits are errors, and the plan depends on nothing but the clips and the config."""

from __future__ import annotations

import pytest

from pipelines.preprocess.plan import SplitConfig, assign_splits, plan_shards
from storage.voxceleb import SourceClip


def _clips(groups: int, per_group: int = 3, test_groups: int = 1) -> list[SourceClip]:
    clips = []
    for g in range(groups):
        split = "test" if g >= groups - test_groups else "dev"
        for i in range(per_group):  # two identities per group, like two variants of one portrait
            identity = f"id{g:03d}{i % 2:02d}"
            clips.append(SourceClip(identity, "vid", f"{i:05d}", split, f"/c/{identity}/{i}.mp4", None, None,
                                    f"portrait:{g}"))
    return clips


def test_groups_never_straddle_splits() -> None:
    clips = _clips(groups=12)
    splits = assign_splits(clips, SplitConfig(seed=3, val_fraction=0.2, clips_per_shard=4, min_shards_per_split=2))
    by_group: dict[str, set[str]] = {}
    for clip in clips:
        by_group.setdefault(clip.group, set()).add(splits[clip.key])
    assert all(len(s) == 1 for s in by_group.values())
    assert set(splits.values()) == {"train", "val", "test"}
    assert all(splits[c.key] == "test" for c in clips if c.official_split == "test")


def test_seed_changes_val_groups_and_plan_is_deterministic() -> None:
    clips = _clips(groups=20)
    cfg = SplitConfig(seed=0, val_fraction=0.2, clips_per_shard=4, min_shards_per_split=2)
    a = assign_splits(clips, cfg)
    assert a == assign_splits(list(reversed(clips)), cfg)
    assert a != assign_splits(clips, SplitConfig(1, 0.2, 4, 2))


def test_every_clip_in_exactly_one_shard() -> None:
    clips = _clips(groups=9, per_group=5)
    cfg = SplitConfig(seed=0, val_fraction=0.25, clips_per_shard=4, min_shards_per_split=2)
    plans = plan_shards(clips, assign_splits(clips, cfg), cfg)
    keys = [c.key for p in plans for c in p.clips]
    assert sorted(keys) == sorted(c.key for c in clips)
    assert {p.split for p in plans} == {"train", "val", "test"}
    assert all(sum(p.split == s for p in plans) >= 2 for s in ("train", "val", "test"))
    assert plans[0].name == "train-000000.tar"


def test_empty_split_is_an_error() -> None:
    with pytest.raises(ValueError, match="split 'test' is empty"):
        assign_splits(_clips(groups=4, test_groups=0), SplitConfig(0, 0.25, 4, 1))
    with pytest.raises(ValueError, match="split 'val' is empty"):
        assign_splits(_clips(groups=4), SplitConfig(0, 0.0, 4, 1))
