"""Split and shard planning: groups never straddle splits, every clip in exactly one shard, an empty split
is named with why (a partial corpus is still planned), and the plan depends on nothing but the clips and the
config."""

from __future__ import annotations

import pytest

from thpad.pipelines.preprocess.plan import SplitConfig, assign_splits, empty_splits, plan_shards
from thpad.storage.voxceleb import SourceClip


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


def test_a_partial_corpus_is_planned_and_its_empty_splits_named() -> None:
    cfg = SplitConfig(0, 0.25, 4, 1)
    dev_only = _clips(groups=4, test_groups=0)  # a dev folder without test/
    splits = assign_splits(dev_only, cfg)
    assert set(splits.values()) == {"train", "val"}
    assert list(empty_splits(dev_only, splits, cfg)) == ["test"]
    assert "no test/ folder" in empty_splits(dev_only, splits, cfg)["test"]
    plans = plan_shards(dev_only, splits, cfg)
    assert sorted(c.key for p in plans for c in p.clips) == sorted(c.key for c in dev_only)
    assert {p.split for p in plans} == {"train", "val"}
    no_val = _clips(groups=4)
    splits = assign_splits(no_val, SplitConfig(0, 0.0, 4, 1))
    assert list(empty_splits(no_val, splits, SplitConfig(0, 0.0, 4, 1))) == ["val"]
    test_only = _clips(groups=2, test_groups=2)
    splits = assign_splits(test_only, cfg)
    assert list(empty_splits(test_only, splits, cfg)) == ["train", "val"]
    full = _clips(groups=6)
    assert empty_splits(full, assign_splits(full, cfg), cfg) == {}


def test_val_by_clip_holds_out_clips_of_every_identity_and_keeps_one_for_train() -> None:
    clips = _clips(groups=5, per_group=8)  # 4 dev groups x 2 identities x 4 clips
    splits = assign_splits(clips, SplitConfig(0, 0.25, 4, 1, val_by="clip"))
    by_identity: dict[str, list[str]] = {}
    for clip in clips:
        if clip.official_split == "dev":
            by_identity.setdefault(clip.identity, []).append(splits[clip.key])
    assert all(sorted(s) == ["train", "train", "train", "val"] for s in by_identity.values())
    assert all(splits[c.key] == "test" for c in clips if c.official_split == "test")
    one_each = _clips(groups=3, per_group=2)  # one clip per identity: none can be held out
    cfg = SplitConfig(0, 0.9, 4, 1, val_by="clip")
    assert "val_by='clip'" in empty_splits(one_each, assign_splits(one_each, cfg), cfg)["val"]
    with pytest.raises(ValueError, match="val_by"):
        SplitConfig(0, 0.25, 4, 1, val_by="identity")
