"""Shard readers: whole clips in order, and the training FrameDataset (identity frames far enough and
from the same clip, the driving frame's mel window and landmarks, resize on read, seeded shuffling,
shards split over ranks and DataLoader workers, S3)."""

from __future__ import annotations

import collections
import dataclasses

import cv2
import numpy as np
import pytest
from torch.utils.data import DataLoader

from thpad.pipelines.train.eye_closure import eye_closure
from thpad.pipelines.train.frames import FrameDataset, FrameSamplingConfig, pick_frames, scale_landmarks, worker_shards
from thpad.pipelines.train.landmark_motion import landmark_motion
from thpad.storage.readers import iter_clips
from thpad.storage.shards import ClipSample, shard_name, write_shard
from thpad.storage.uri import Storage, join
from thpad.storage.windows import mel_window

NUM_SHARDS, CLIPS_PER_SHARD, NUM_FRAMES, SIZE = 5, 2, 12, 64
CFG = FrameSamplingConfig(num_identity_frames=3, min_identity_distance=4, image_size=None, frames_per_window=5,
                          samples_per_clip=2, shuffle_buffer=4, seed=7)


@pytest.fixture(scope="module")
def clips(clip_factory) -> dict[str, ClipSample]:
    """Ten synthetic clips by key; clip i has identity id0000{i // 3}."""
    made = [clip_factory(i, num_frames=NUM_FRAMES, size=SIZE, identity=f"id{i // 3:05d}")
            for i in range(NUM_SHARDS * CLIPS_PER_SHARD)]
    return {c.key: c for c in made}


@pytest.fixture(scope="module")
def shards(clips, tmp_path_factory) -> list[str]:
    """The clips in five local shards of two."""
    root = str(tmp_path_factory.mktemp("shards"))
    ordered = sorted(clips.values(), key=lambda c: c.key)
    uris = [join(root, shard_name("train", i)) for i in range(NUM_SHARDS)]
    for i, uri in enumerate(uris):
        write_shard(ordered[i * CLIPS_PER_SHARD:(i + 1) * CLIPS_PER_SHARD], uri, Storage())
    return uris


def identities(clips) -> dict[str, int]:
    return {name: i for i, name in enumerate(sorted({c.meta["identity"] for c in clips.values()}))}


def to_uint8(image) -> np.ndarray:
    """(3, S, S) in [-1, 1] -> (S, S, 3) uint8."""
    return ((image.permute(1, 2, 0).numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)  # (S, S, 3)


def test_iter_clips_in_shard_order(shards, clips) -> None:
    keys = [c.key for c in iter_clips(shards, Storage())]
    assert keys == sorted(clips)


def test_pick_frames_respects_distance() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        t, ids = pick_frames(12, 3, 4, rng)
        assert np.all(np.abs(ids - t) >= 4) and len(set(ids.tolist())) == 3
    assert pick_frames(4, 3, 4, rng) is None  # no frame has a partner 4 away
    t, ids = pick_frames(5, 3, 4, rng)  # only frames 0 and 4 pair up: identity frames repeat
    assert {t, *ids.tolist()} == {0, 4} and len(ids) == 3
    t, ids = pick_frames(3, 2, 0, rng)
    assert t not in ids.tolist()


def test_items_match_their_clip(shards, clips, read_code) -> None:
    dataset = FrameDataset(shards, Storage(), CFG, identities(clips))
    items = list(dataset)
    assert len(items) == len(clips) * CFG.samples_per_clip
    for item in items:
        clip, t = clips[item["key"]], item["frame"]
        index = int(clip.meta["utterance"]) - 1
        assert item["image"].shape == (3, SIZE, SIZE) and item["identity_images"].shape == (3, 3, SIZE, SIZE)
        assert -1.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
        assert read_code(to_uint8(item["image"])) == (index, t)
        for image, landmarks in zip(item["identity_images"], item["identity_landmarks"], strict=True):
            j_clip, j = read_code(to_uint8(image))
            assert j_clip == index and abs(j - t) >= CFG.min_identity_distance
            assert np.array_equal(landmarks.numpy(), clip.lmk[j])  # each identity frame's own landmarks
        window, valid = mel_window(clip.mel, t, 5, 4)
        assert item["mel"].shape == (80, 20)
        assert np.array_equal(item["mel"].numpy(), window) and np.array_equal(item["mel_valid"].numpy(), valid)
        assert np.array_equal(item["landmarks"].numpy(), clip.lmk[t])
        assert item["identity"] == identities(clips)[clip.meta["identity"]]
        assert "landmark_motion" not in item  # only when asked for (L_lmk on)


def test_items_carry_landmark_motion_when_asked(shards, clips) -> None:
    cfg = dataclasses.replace(CFG, motion_points=(17, 48), motion_min_std=0.5)
    items = list(FrameDataset(shards[:2], Storage(), cfg, identities(clips)))
    assert items
    for item in items:
        expected = landmark_motion(clips[item["key"]].lmk, 17, 48, 0.5)[item["frame"]]  # (66,)
        assert item["landmark_motion"].shape == (4 + 2 * 31,)
        np.testing.assert_array_equal(item["landmark_motion"].numpy(), expected)


def test_items_end_with_the_eye_closure_when_asked(shards, clips) -> None:
    """With ``closure`` the landmark motion gains one last column: the clip's eye closure (read from its decoded
    frames, here at their stored 64 px), centred on the clip and scaled by its std plus ``closure_min_std``."""
    cfg = dataclasses.replace(CFG, motion_points=(17, 48), closure=True, closure_min_std=0.05)
    decoded = {c.key: c for c in iter_clips(shards[:2], Storage())}
    items = list(FrameDataset(shards[:2], Storage(), cfg, identities(clips)))
    assert items
    for item in items:
        clip = decoded[item["key"]]
        closure = eye_closure(clip.frames, clip.lmk)  # (T,)
        assert closure.std() > 0  # the drawn clips' eyes vary, so the column is not a constant
        column = (closure - closure.mean()) / (closure.std() + 0.05)  # (T,)
        assert item["landmark_motion"].shape == (4 + 2 * 31 + 1,)
        motion = landmark_motion(clip.lmk, 17, 48, 0.25)[item["frame"]]  # (66,)
        np.testing.assert_array_equal(item["landmark_motion"][:-1].numpy(), motion)
        assert item["landmark_motion"][-1].item() == pytest.approx(column[item["frame"]], abs=1e-5)


def test_clip_without_landmark_shape_is_skipped_with_a_reason(clips, tmp_path, caplog) -> None:
    good, flat = sorted(clips.values(), key=lambda c: c.key)[:2]
    flat = dataclasses.replace(flat, lmk=np.full_like(flat.lmk, 7.0))  # every point in one place
    uri = join(str(tmp_path), shard_name("train", 0))
    write_shard([good, flat], uri, Storage())
    cfg = dataclasses.replace(CFG, motion_points=(17, 48))
    keys = {item["key"] for item in FrameDataset([uri], Storage(), cfg, identities(clips))}
    assert keys == {good.key}
    assert f"clip {flat.key!r} skipped" in caplog.text and "no extent" in caplog.text
    assert {item["key"] for item in FrameDataset([uri], Storage(), CFG, identities(clips))} == {good.key, flat.key}


def test_a_clip_of_an_unknown_identity_is_refused_by_name(shards, clips) -> None:
    known = identities(clips)
    missing = sorted(known)[0]
    dataset = FrameDataset(shards, Storage(), CFG, {k: v for k, v in known.items() if k != missing})
    with pytest.raises(KeyError, match=f"identity '{missing}' is not in the identity index"):
        list(dataset)


def test_later_epochs_give_the_identities_of_the_first(shards, clips) -> None:
    """The identity index is parsed from each clip's meta once and kept: every epoch labels clips alike."""
    dataset, known = FrameDataset(shards, Storage(), CFG, identities(clips)), identities(clips)
    for epoch in range(2):
        dataset.set_epoch(epoch)
        for item in dataset:
            assert item["identity"] == known[clips[item["key"]].meta["identity"]]


def test_resize_on_read(shards, clips, read_code) -> None:
    cfg = dataclasses.replace(CFG, image_size=16)
    for item in FrameDataset(shards[:1], Storage(), cfg, identities(clips)):
        clip, t = clips[item["key"]], item["frame"]
        assert item["image"].shape == (3, 16, 16) and item["identity_images"].shape == (3, 3, 16, 16)
        expected = cv2.resize(clip.frames[t], (16, 16), interpolation=cv2.INTER_AREA)
        assert np.abs(to_uint8(item["image"]).astype(int) - expected).mean() < 3.0
        assert read_code(to_uint8(item["image"]))[1] == t
        np.testing.assert_allclose(item["landmarks"].numpy(), scale_landmarks(clip.lmk[t], SIZE, 16))
        j = read_code(to_uint8(item["identity_images"][0]))[1]
        np.testing.assert_allclose(item["identity_landmarks"][0].numpy(), scale_landmarks(clip.lmk[j], SIZE, 16))
        np.testing.assert_allclose(scale_landmarks(np.array([[-0.5, 63.5]]), 64, 16), [[-0.5, 15.5]])


def test_seeded_shuffling(shards, clips) -> None:
    def order(epoch: int, seed: int = CFG.seed) -> list[tuple[str, int]]:
        dataset = FrameDataset(shards, Storage(), dataclasses.replace(CFG, seed=seed), identities(clips))
        dataset.set_epoch(epoch)
        return [(item["key"], item["frame"]) for item in dataset]

    assert order(0) == order(0)
    assert order(1) != order(0) and order(0, seed=8) != order(0)
    assert sorted({k for k, _ in order(1)}) == sorted(clips)


def test_worker_shards() -> None:
    shards = [f"s{i}" for i in range(5)]
    assert worker_shards(shards, 1, 2) == (["s1", "s3"], 1, 0)
    assert worker_shards(shards[:1], 3, 4) == (["s0"], 4, 3)


@pytest.mark.parametrize("num_shards", [NUM_SHARDS, 1])
def test_ranks_and_workers_see_every_clip_once(shards, clips, num_shards: int) -> None:
    cfg = dataclasses.replace(CFG, samples_per_clip=1)
    seen = collections.Counter()
    for rank in range(2):
        dataset = FrameDataset(shards[:num_shards], Storage(), cfg, identities(clips), rank=rank, world_size=2)
        for item in DataLoader(dataset, batch_size=None, num_workers=2):
            seen[item["key"]] += 1
    expected = sorted(clips) if num_shards == NUM_SHARDS else sorted(clips)[:CLIPS_PER_SHARD]
    assert sorted(seen) == expected and set(seen.values()) == {1}


def test_batches_from_s3(clips, s3_storage: Storage, s3_root: str) -> None:
    """Shards on S3, read by forked DataLoader workers (each makes its own boto3 client), batched."""
    ordered = sorted(clips.values(), key=lambda c: c.key)
    uris = [join(s3_root, shard_name("train", i)) for i in range(2)]
    for i, uri in enumerate(uris):
        write_shard(ordered[i::2], uri, s3_storage)
    s3_storage.client()  # a client made before the fork must not be reused in the workers
    dataset = FrameDataset(uris, s3_storage, dataclasses.replace(CFG, image_size=32), identities(clips))
    batches = list(DataLoader(dataset, batch_size=4, num_workers=2))
    assert sum(len(b["key"]) for b in batches) == len(clips) * CFG.samples_per_clip
    assert batches[0]["image"].shape == (4, 3, 32, 32) and batches[0]["identity_images"].shape == (4, 3, 3, 32, 32)
    assert batches[0]["mel"].shape == (4, 80, 20) and batches[0]["landmarks"].shape == (4, 68, 2)
