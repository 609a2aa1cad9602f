"""The training view of the shards (stages 1 and 2): per clip, a driving frame, its 0.2 s mel window
(docs/paper-notes.md §2.1), K identity frames of the same clip far enough from it, and its 68 landmarks, with
the optional landmark-motion and eye-closure targets of L_lmk. It decodes only those K + 1 JPEGs (see the
frames-format note in storage/shards.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from thpad.pipelines.train.eye_closure import CLOSURE_SIZE, eye_closure
from thpad.pipelines.train.landmark_motion import DegenerateLandmarksError, landmark_motion
from thpad.storage.readers import iter_raw, to_tensor
from thpad.storage.shards import LMK, MEL, decode_frames, decode_meta, frame_height, load_npy
from thpad.storage.uri import Storage
from thpad.storage.windows import mel_window

log = logging.getLogger(__name__)
MEL_BINS_PER_FRAME = 4  # 16 kHz, hop 160, 25 fps (docs/paper-notes.md §2.1)


@dataclass(frozen=True)
class FrameSamplingConfig:
    """How ``FrameDataset`` draws training frames from clips."""

    num_identity_frames: int  # K identity frames per driving frame
    min_identity_distance: int  # |identity frame - driving frame| >= this, in frames
    image_size: int | None  # side of returned frames; None keeps the stored size (224)
    frames_per_window: int = 5  # mel window width in video frames (0.2 s at 25 fps)
    samples_per_clip: int = 1  # driving frames drawn per clip read
    shuffle_buffer: int = 16  # clips held for shuffling, per worker
    seed: int = 0
    motion_points: tuple[int, int] | None = None  # landmark points of ``landmark_motion`` items; None: no such item
    motion_min_std: float = 0.25  # ``landmark_motion``'s floor under each column's standard deviation
    closure: bool = False  # with ``motion_points``: append ``storage.eye_closure``'s column to ``landmark_motion``
    closure_min_std: float = 0.05  # the closure column's floor under its standard deviation over the clip


def worker_shards(shards: Sequence[str], slot: int, total: int) -> tuple[list[str], int, int]:
    """Which shards one of ``total`` readers reads, and which of their clips it keeps.

    With at least ``total`` shards each reader takes every ``total``-th shard and all its clips;
    with fewer, every reader reads all shards and keeps every ``total``-th clip from ``slot`` on.

    Returns:
        (shards, clip stride, clip offset).
    """
    if len(shards) >= total:
        return list(shards[slot::total]), 1, 0
    return list(shards), total, slot


def shuffled(items: Iterable[Any], size: int, rng: np.random.Generator) -> Iterator[Any]:
    """Shuffle a stream through a buffer of ``size`` items (exact shuffle if the stream fits)."""
    buffer: list[Any] = []
    for item in items:
        buffer.append(item)
        if len(buffer) > size:
            yield buffer.pop(int(rng.integers(len(buffer))))
    while buffer:
        yield buffer.pop(int(rng.integers(len(buffer))))


def pick_frames(num_frames: int, num_identity: int, min_distance: int,
                rng: np.random.Generator) -> tuple[int, np.ndarray] | None:
    """Draw a driving frame t and ``num_identity`` identity frames j with ``|j - t| >= min_distance``.

    t is uniform over the frames that have at least one such partner; identity frames are distinct
    when enough exist, otherwise drawn with replacement. Returns None when the clip is too short.
    """
    min_distance = max(min_distance, 1)  # an identity frame is never the driving frame itself
    frames = np.arange(num_frames)
    drivable = frames[(frames >= min_distance) | (frames <= num_frames - 1 - min_distance)]
    if drivable.size == 0:
        return None
    t = int(rng.choice(drivable))
    far = frames[np.abs(frames - t) >= min_distance]
    ids = rng.choice(far, size=num_identity, replace=far.size < num_identity)  # (K,)
    return t, ids


def scale_landmarks(lmk: np.ndarray, stored: int, size: int) -> np.ndarray:
    """Landmarks (pixel centres at integers) of a ``stored``-px frame in the frame resized to ``size``."""
    return ((lmk + 0.5) * (size / stored) - 0.5).astype(np.float32)


class FrameDataset(IterableDataset):
    """Random driving frames with mel windows, landmarks and same-clip identity frames, for training.

    Shards are split over ``world_size`` ranks times DataLoader workers (see ``worker_shards``); the
    shard order, clip shuffle and frame draws are seeded by (seed, epoch, rank, worker). Each item:

    - ``image`` (3, S, S) float32 in [-1, 1]: the driving frame t;
    - ``mel`` (n_mels, 4 * frames_per_window) float32 and ``mel_valid`` (same width,) bool: ``mel_window`` of t;
    - ``identity_images`` (K, 3, S, S) float32: frames j of the same clip, ``|j - t| >= min_identity_distance``;
    - ``landmarks`` (68, 2) float32: frame t's landmarks in S-px coordinates;
    - ``identity_landmarks`` (K, 68, 2) float32: the identity frames' landmarks, likewise;
    - ``landmark_motion`` (4 + 2P,) float32 (4 + 2P + 1 with ``closure``), only with ``motion_points``: frame t's
      row of ``storage.landmark_motion.landmark_motion`` over the clip, then with ``closure`` one more column: its
      ``storage.eye_closure.eye_closure``, centred on the clip and divided by its std plus ``closure_min_std``
      (computed on the clip's first read and kept);
    - ``key`` str, ``identity`` int (index from ``identities``), ``frame`` int (t).

    Clips too short for any identity frame, and (with ``motion_points``) clips whose landmarks have no shape
    (``DegenerateLandmarksError``, logged) are skipped. Ranks may get different numbers of items.
    """

    def __init__(self, shard_uris: Sequence[str], storage: Storage, cfg: FrameSamplingConfig,
                 identities: Mapping[str, int], rank: int = 0, world_size: int = 1, epoch: int = 0) -> None:
        super().__init__()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.shard_uris, self.storage, self.cfg = list(shard_uris), storage, cfg
        self.identities, self.rank, self.world_size, self.epoch = dict(identities), rank, world_size, epoch
        self._identity: dict[str, int] = {}  # clip key -> identity index, read from the clip's meta once
        self._closure: dict[str, np.ndarray] = {}  # clip key -> (T, 1) standardised eye closure, computed once

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (call before iterating, as with ``DistributedSampler``)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        slot, total = self.rank * num_workers + worker, self.world_size * num_workers
        order = np.random.default_rng([self.cfg.seed, self.epoch]).permutation(len(self.shard_uris))
        shards, stride, offset = worker_shards([self.shard_uris[i] for i in order], slot, total)
        rng = np.random.default_rng([self.cfg.seed, self.epoch, self.rank, worker])
        clips = (raw for i, raw in enumerate(iter_raw(shards, self.storage)) if i % stride == offset)
        for key, members in shuffled(clips, self.cfg.shuffle_buffer, rng):
            yield from self.clip_items(key, members, rng)

    def identity_index(self, key: str, members: dict[str, bytes]) -> int:
        """The clip's index in ``identities``, from its meta's identity, parsed on the clip's first read only (a
        sample-corpus meta carries the truth of every frame: parsing it cost more than the rest of an item)."""
        if key not in self._identity:
            name = decode_meta(key, members)["identity"]
            if name not in self.identities:
                raise KeyError(f"clip {key!r}: identity {name!r} is not in the identity index")
            self._identity[key] = self.identities[name]
        return self._identity[key]

    def closure_column(self, key: str, members: dict[str, bytes], lmk: np.ndarray, stored: int) -> np.ndarray:
        """The clip's (T, 1) standardised ``eye_closure``, from all its frames decoded once at ``CLOSURE_SIZE`` px
        (or the stored size when smaller) on its first read, then kept (0.08 s for a 160-frame clip here)."""
        if key not in self._closure:
            size = min(CLOSURE_SIZE, stored)
            frames = decode_frames(members, None, size)  # (T, s, s, 3)
            closure = eye_closure(frames, scale_landmarks(lmk, stored, size) if size != stored else lmk)  # (T,)
            column = (closure - closure.mean()) / (closure.std() + self.cfg.closure_min_std)  # (T,)
            self._closure[key] = column[:, None].astype(np.float32)  # (T, 1)
        return self._closure[key]

    def clip_items(self, key: str, members: dict[str, bytes], rng: np.random.Generator) -> Iterator[dict[str, Any]]:
        """The ``samples_per_clip`` items of one clip (raw members as read from a shard)."""
        identity = self.identity_index(key, members)
        lmk, mel = load_npy(members[LMK]), load_npy(members[MEL])  # (T, 68, 2), (n_mels, 4T)
        num_frames = lmk.shape[0]
        stored = frame_height(members)
        size = self.cfg.image_size or stored
        points = self.cfg.motion_points
        try:
            motion = None if points is None else landmark_motion(lmk, *points, self.cfg.motion_min_std)  # (T, D)
        except DegenerateLandmarksError as err:
            log.warning("clip %r skipped: no landmark motion for L_lmk (%s)", key, err)
            return
        at_size = scale_landmarks(lmk, stored, size) if size != stored else lmk  # (T, 68, 2) in S-px coordinates
        if motion is not None and self.cfg.closure:
            motion = np.concatenate([motion, self.closure_column(key, members, lmk, stored)], axis=1)  # (T, D + 1)
        for _ in range(self.cfg.samples_per_clip):
            picked = pick_frames(num_frames, self.cfg.num_identity_frames, self.cfg.min_identity_distance, rng)
            if picked is None:
                return
            t, ids = picked
            images = to_tensor(decode_frames(members, [t, *ids.tolist()], self.cfg.image_size))  # (K+1, 3, S, S)
            window, valid = mel_window(mel, t, self.cfg.frames_per_window, mel.shape[1] // num_frames)
            item = {
                "image": images[0], "identity_images": images[1:],
                "mel": torch.from_numpy(window), "mel_valid": torch.from_numpy(valid),
                "landmarks": torch.from_numpy(at_size[t]), "identity_landmarks": torch.from_numpy(at_size[ids]),
                "key": key, "identity": identity, "frame": t,
            }
            yield item if motion is None else item | {"landmark_motion": torch.from_numpy(motion[t])}


def endless_batches(dataset: FrameDataset, batch_size: int, num_workers: int, epoch: int,
                    skip: int) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """Batches forever, epoch after epoch, as (epoch, batches taken in that epoch, batch).

    Ranks may hold different numbers of samples, so no rank may stop at its epoch end (the gradient all-reduce
    would hang); ``skip`` batches of the first epoch are drawn and dropped, which replays the data position exactly.
    """
    while True:
        dataset.set_epoch(epoch)
        loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, drop_last=True)
        taken = 0
        for taken, batch in enumerate(loader, start=1):
            if taken > skip:
                yield epoch, taken, batch
        if taken == 0:
            raise ValueError(f"epoch {epoch} of rank shards {dataset.shard_uris} gave no batch of {batch_size}")
        epoch, skip = epoch + 1, 0
