"""The priors' training data (pipelines/train/motion_data.py), without Ray: folder checks and hashes, the
per-rank split, normalisation statistics, seeded crops, padding masks and an exactly replayable stream."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from thpad.models.motion_prior import NormStats
from thpad.pipelines.train.prior.data import (
    check_features,
    collate_windows,
    endless_windows,
    epoch_windows,
    moments,
    normalise_clips,
    rank_clips,
    read_clips,
    stats_from_moments,
    val_windows,
)
from thpad.storage.features import ClipFeatures, list_feature_files, write_feature_file, write_info
from thpad.storage.fingerprint import features_fingerprint
from thpad.storage.uri import Storage

N, A = 6, 4


def make_clip(key: str, frames: int, seed: int, speaking: bool = True) -> ClipFeatures:
    rng = np.random.default_rng(seed)
    f_nl = rng.normal(2.0, 3.0, (frames, N)).astype(np.float32)
    f_nl[:, -1] = 5.0  # a constant channel
    truth = {"motion": {"speaking": (np.arange(frames) % 7 < 4).astype(float).tolist()}} if speaking else None
    return ClipFeatures(key, key[:3], "train", f_nl, rng.normal(-1.0, 0.5, (frames, A)).astype(np.float32), truth)


@pytest.fixture
def folder(tmp_path) -> str:
    """train: 2 files (50+20 and 50 frames); val: 1 file (20+50 frames); info.json."""
    storage, root = Storage(), str(tmp_path / "features")
    write_feature_file([make_clip("id0/a", 50, 0), make_clip("id0/b", 20, 1)], f"{root}/train/train-000000.parquet",
                       storage)
    write_feature_file([make_clip("id1/c", 50, 2)], f"{root}/train/train-000001.parquet", storage)
    write_feature_file([make_clip("id2/d", 20, 3), make_clip("id2/e", 50, 4)], f"{root}/val/val-000000.parquet",
                       storage)
    write_info(root, {"nl_dim": N, "audio_dim": A}, storage)
    return root


def test_check_features_names_what_is_missing(folder, tmp_path) -> None:
    check_features(folder, Storage())
    with pytest.raises(FileNotFoundError, match="no info.json"):
        check_features(str(tmp_path / "nowhere"), Storage())
    shutil.rmtree(f"{folder}/val")
    with pytest.raises(ValueError, match="no val feature files"):
        check_features(folder, Storage())


def test_fingerprint_follows_content_not_place(folder, tmp_path) -> None:
    storage = Storage()
    moved = str(tmp_path / "moved")
    shutil.copytree(folder, moved)
    assert features_fingerprint(moved, storage) == features_fingerprint(folder, storage)
    write_feature_file([make_clip("id1/c", 50, 9)], f"{moved}/train/train-000001.parquet", storage)
    assert features_fingerprint(moved, storage) != features_fingerprint(folder, storage)


def test_ranks_split_files_or_clips_without_overlap(folder) -> None:
    storage = Storage()
    by_file = [[c.key for c in rank_clips(folder, "train", r, 2, storage)] for r in range(2)]
    assert by_file == [["id0/a", "id0/b"], ["id1/c"]]
    by_clip = [[c.key for c in rank_clips(folder, "train", r, 3, storage)] for r in range(3)]
    assert by_clip == [["id0/a"], ["id0/b"], ["id1/c"]]
    with pytest.raises(ValueError, match="rank 3 of 4 got no train clip"):
        rank_clips(folder, "train", 3, 4, storage)


def test_mismatched_widths_name_the_file(folder) -> None:
    storage = Storage()
    odd = ClipFeatures("id9/z", "id9", "train", np.zeros((5, N + 1), np.float32), np.zeros((5, A), np.float32), None)
    write_feature_file([odd], f"{folder}/train/train-000002.parquet", storage)
    with pytest.raises(ValueError, match="train-000002.parquet"):
        read_clips(list_feature_files(folder, "train", storage), storage)


def test_summed_moments_give_the_statistics_of_all_frames(folder) -> None:
    storage = Storage()
    parts = [rank_clips(folder, "train", r, 2, storage) for r in range(2)]
    norm = stats_from_moments(moments(parts[0]) + moments(parts[1]), N)
    nl = np.concatenate([c.f_nl for part in parts for c in part])
    audio = np.concatenate([c.f_a for part in parts for c in part])
    np.testing.assert_allclose(norm.nl_mean, nl.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.nl_std[:-1], nl.std(0)[:-1], rtol=1e-4)
    assert norm.nl_std[-1] == 1.0  # the constant channel is centred only
    np.testing.assert_allclose(norm.audio_std, audio.std(0), rtol=1e-4)
    normalised = normalise_clips(parts[0], norm)[0].nl.numpy()
    np.testing.assert_allclose(norm.unnormalise_nl(normalised), parts[0][0].f_nl, rtol=1e-5, atol=1e-5)
    again = NormStats.from_json(norm.to_json())
    np.testing.assert_array_equal(again.audio_mean, norm.audio_mean)


def test_epoch_windows_are_seeded_and_inside_the_clips() -> None:
    lengths, window = [50, 20, 300], 32
    first = epoch_windows(lengths, window, seed=1, rank=0, epoch=0)
    assert first == epoch_windows(lengths, window, seed=1, rank=0, epoch=0)
    assert first != epoch_windows(lengths, window, seed=1, rank=1, epoch=0)
    assert first != epoch_windows(lengths, window, seed=1, rank=0, epoch=1)
    counts = np.bincount([i for i, _ in first], minlength=3)
    assert counts.tolist() == [2, 1, 10]  # ceil(T / window) crops per clip
    for i, start in first:
        assert 0 <= start <= max(lengths[i] - window, 0)


def test_collate_pads_short_crops_and_masks_the_padding(folder) -> None:
    clips = normalise_clips(read_clips(list_feature_files(folder, "train", Storage()), Storage()),
                            stats_from_moments(moments(read_clips(list_feature_files(folder, "train", Storage()),
                                                                  Storage())), N))
    batch = collate_windows(clips, [(0, 10), (1, 0)], window=32)
    assert batch["x0"].shape == (2, 32, N) and batch["audio"].shape == (2, 32, A)
    assert batch["valid"].sum(1).tolist() == [32, 20]
    assert torch.equal(batch["x0"][0], clips[0].nl[10:42])
    assert torch.equal(batch["x0"][1, :20], clips[1].nl)
    assert not batch["x0"][1, 20:].any() and not batch["audio"][1, 20:].any()
    short = collate_windows(clips, [(1, 0)], window=32)  # a batch is padded to its longest crop only
    assert short["x0"].shape == (1, 20, N) and bool(short["valid"].all())


def test_stream_restarts_exactly_where_it_stopped(folder) -> None:
    clips = normalise_clips(read_clips(list_feature_files(folder, "train", Storage()), Storage()),
                            NormStats(np.zeros(N), np.ones(N), np.zeros(A), np.ones(A)))
    stream = endless_windows(clips, window=32, batch_size=3, seed=0, rank=0)
    batches = [next(stream) for _ in range(5)]  # 2 + 1 + 2 crops per epoch: batches run across epoch ends
    assert [(e, p) for e, p, _ in batches] == [(0, 3), (1, 1), (1, 4), (2, 2), (2, 5)]
    epoch, position, _ = batches[1]
    resumed = endless_windows(clips, window=32, batch_size=3, seed=0, rank=0, epoch=epoch, position=position)
    for (_, _, want), (_, _, got) in zip(batches[2:], [next(resumed) for _ in range(3)], strict=True):
        assert all(torch.equal(want[k], got[k]) for k in want)


def test_val_windows_take_each_clip_start_with_its_speaking_truth(folder) -> None:
    storage = Storage()
    clips = read_clips(list_feature_files(folder, "val", storage), storage)
    norm = NormStats(np.zeros(N), np.ones(N), np.zeros(A), np.ones(A))
    val = val_windows(clips, norm, window=32, max_clips=5)
    assert val.keys == ["id2/d", "id2/e"] and val.audio.shape == (2, 32, A)
    assert [len(t) for t in val.truth] == [20, 32] and [len(s) for s in val.speaking] == [20, 32]
    np.testing.assert_array_equal(val.truth[1], clips[1].f_nl[:32])
    without = [make_clip("id3/f", 20, 5, speaking=False)] + clips
    assert val_windows(without, norm, window=32, max_clips=1).speaking is None
