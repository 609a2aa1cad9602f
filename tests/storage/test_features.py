"""Feature files: round trip (local and S3), layout, shape validation, info.json."""

from __future__ import annotations

import numpy as np
import pytest

from thpad.storage.features import (
    ClipFeatures,
    feature_file_uri,
    list_feature_files,
    read_feature_file,
    read_info,
    read_split,
    write_feature_file,
    write_info,
)
from thpad.storage.uri import Storage


@pytest.fixture(params=["local", "s3"])
def out_and_storage(request, local_root: str) -> tuple[str, Storage]:
    if request.param == "local":
        return local_root, Storage()
    return request.getfixturevalue("s3_root"), request.getfixturevalue("s3_storage")


def _clip(key: str, t: int, seed: int, truth: dict | None) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    return ClipFeatures(key, "id1", "train", rng.normal(size=(t, 42)).astype(np.float32),
                        rng.normal(size=(t, 32)).astype(np.float32), truth)


def test_round_trip_keeps_values_order_and_truth(out_and_storage) -> None:
    folder, storage = out_and_storage
    clips = [_clip("b", 7, 1, {"motion": {"yaw": [0.5] * 7}, "events": []}), _clip("a", 3, 2, None)]
    uri = feature_file_uri(folder, "train", "/x/shards/train-000002.tar")
    assert uri.endswith("train/train-000002.parquet")
    assert write_feature_file(clips, uri, storage) == 2
    back = read_feature_file(uri, storage)
    assert [c.key for c in back] == ["b", "a"]
    for got, want in zip(back, clips, strict=True):
        np.testing.assert_array_equal(got.f_nl, want.f_nl)
        np.testing.assert_array_equal(got.f_a, want.f_a)
        assert got.truth == want.truth and got.num_frames == want.num_frames
    assert list_feature_files(folder, "train", storage) == [uri]
    assert [c.key for c in read_split(folder, "train", storage)] == ["b", "a"]
    assert read_split(folder, "val", storage) == []


def test_info_round_trip(out_and_storage) -> None:
    folder, storage = out_and_storage
    write_info(folder, {"nl_dim": 42, "clips": {"train": 3}}, storage)
    assert read_info(folder, storage) == {"nl_dim": 42, "clips": {"train": 3}}


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same T"):
        ClipFeatures("k", "id", "train", np.zeros((5, 42), np.float32), np.zeros((4, 32), np.float32), None)
