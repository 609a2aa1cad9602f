"""Shard readers: whole clips for feature extraction and evaluation, random frames for training.

``iter_clips`` streams shards (local or S3) member by member with ``tarfile`` over a ``Storage``
stream: no ``pipe:`` subprocess, no temporary copy. Measured on a 73 MiB shard of 50 real 224 px
clips from a local moto S3 server (raw samples, nothing decoded): boto3 streaming body + tarfile 310
clips/s, s3fs file + tarfile 80-160 clips/s (8-32 MiB blocks), ``wds.WebDataset`` over s3fs 88
clips/s; local files 1,390 clips/s. ``FrameDataset`` is the training view of
``train_disentangle`` (paper_spec §2): per clip, a driving frame, its 0.2 s mel window (§2.1), K
identity frames of the same clip far enough from it, and its 68 landmarks; it decodes only those
K + 1 JPEGs (see the frames-format note in storage/shards.py).
"""

from __future__ import annotations

import logging
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from thpad.storage.eye_closure import CLOSURE_SIZE, eye_closure
from thpad.storage.landmark_motion import DegenerateLandmarksError, landmark_motion
from thpad.storage.shards import LMK, MEL, ClipSample, decode_frames, decode_meta, decode_sample, frame_height, load_npy
from thpad.storage.uri import Storage, StorageError
from thpad.storage.windows import mel_window

RawSample = tuple[str, dict[str, bytes]]
log = logging.getLogger(__name__)


def iter_tar_samples(stream: IO[bytes]) -> Iterator[RawSample]:
    """Stream a shard: yield ``(key, {ext: bytes})`` per sample, reading each byte once.

    Consecutive members with the same key form one sample; the key is the name up to its first dot.
    """
    key, members = None, {}
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for info in tar:
            if not info.isfile():
                continue
            name_key, _, ext = info.name.partition(".")
            if name_key != key:
                if key is not None:
                    yield key, members
                key, members = name_key, {}
            members[ext] = tar.extractfile(info).read()
    if key is not None:
        yield key, members


def iter_raw(shard_uris: Iterable[str], storage: Storage) -> Iterator[RawSample]:
    """Every sample of the shards, in order, as raw member bytes (nothing decoded).

    Raises:
        StorageError: a shard cannot be read or is not a valid tar (names the shard).
    """
    for uri in shard_uris:
        with storage.open_read(uri) as stream:
            try:
                yield from iter_tar_samples(stream)
            except tarfile.TarError as err:
                raise StorageError("read", uri, f"not a valid shard ({err})") from err


def iter_clips(shard_uris: Iterable[str], storage: Storage) -> Iterator[ClipSample]:
    """Every clip of the shards, fully decoded (frames (T, H, W, 3) uint8 RGB, audio, arrays, meta)."""
    for key, members in iter_raw(shard_uris, storage):
        yield decode_sample(key, members)


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


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(n, S, S, 3) uint8 RGB -> (n, 3, S, S) float32 in [-1, 1]."""
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)  # (n, 3, S, S)


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
                "landmarks": torch.from_numpy(scale_landmarks(lmk[t], stored, size) if size != stored else lmk[t]),
                "key": key, "identity": identity, "frame": t,
            }
            yield item if motion is None else item | {"landmark_motion": torch.from_numpy(motion[t])}
