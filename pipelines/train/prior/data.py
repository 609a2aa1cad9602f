"""Training data of the motion priors: windows over the per-clip feature sequences of ``extract_features``.

1. Each rank reads its share of the train feature files (files ``rank::world_size``; with fewer files than
   ranks, every rank reads all files and keeps clips ``rank::world_size``).
2. f_nl and f_a are normalised per channel with the train split's mean and std. The paper is silent; MDM
   normalises its motion features the same way. The ranks' moments are summed (all-reduce), so every rank
   uses the same statistics; the snapshot stores them, so sampling can un-normalise.
3. An epoch visits every clip ``ceil(T / window)`` times in a random order, each visit a crop of
   ``window`` frames at a random offset; the order and offsets are drawn from (seed, rank, epoch).
   A clip shorter than the window gives its whole length; a batch is padded to its longest window and
   carries a padding mask ``valid`` (True on real frames).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thpad.models.motion_prior import NormStats
from thpad.pipelines.train.harness import derive_seed
from thpad.storage.features import ClipFeatures, info_uri, list_feature_files, read_feature_file
from thpad.storage.uri import Storage

SPLITS = ("train", "val")
STD_FLOOR = 1e-6  # a channel whose std is below this is constant: it is centred, not scaled


def check_features(folder: str, storage: Storage) -> None:
    """Refuse a features folder that is incomplete (no info.json) or has no train or val files."""
    if not storage.exists(info_uri(folder)):
        raise FileNotFoundError(f"no features at {folder} (no info.json): run `thpad extract-features` or "
                                "`dvc repro extract_features` first, or fix the stage's `features` path")
    for split in SPLITS:
        if not list_feature_files(folder, split, storage):
            raise ValueError(f"the features folder {folder} holds no {split} feature files ({split}/*.parquet); "
                             "the priors train on the train split and validate on the val split; an empty split "
                             "comes from a preprocessed corpus without it (see `thpad preprocess`'s warning)")




def read_clips(uris: Sequence[str], storage: Storage) -> list[ClipFeatures]:
    """Every clip of the given feature files; all must share one (nl_dim, audio_dim)."""
    clips: list[ClipFeatures] = []
    for uri in uris:
        for clip in read_feature_file(uri, storage):
            widths = (clip.f_nl.shape[1], clip.f_a.shape[1])
            if clips and widths != (clips[0].f_nl.shape[1], clips[0].f_a.shape[1]):
                raise ValueError(f"{uri}: clip {clip.key!r} has (nl_dim, audio_dim) {widths}, other clips "
                                 f"{(clips[0].f_nl.shape[1], clips[0].f_a.shape[1])}; re-run extract_features")
            clips.append(clip)
    return clips


def rank_clips(folder: str, split: str, rank: int, world_size: int, storage: Storage) -> list[ClipFeatures]:
    """This rank's clips of a split: its feature files, or its clips when there are fewer files than ranks."""
    files = list_feature_files(folder, split, storage)
    if len(files) >= world_size:
        clips = read_clips(files[rank::world_size], storage)
    else:
        clips = read_clips(files, storage)[rank::world_size]
    if not clips:
        raise ValueError(f"rank {rank} of {world_size} got no {split} clip from {folder} ({len(files)} files): "
                         "use fewer workers or extract more clips")
    return clips


def moments(clips: Sequence[ClipFeatures]) -> torch.Tensor:
    """Frame count, sums and sums of squares of f_nl and f_a, flat (1 + 2N + 2A,) float64 (for an all-reduce)."""
    nl = np.concatenate([c.f_nl for c in clips]).astype(np.float64)  # (F, N)
    audio = np.concatenate([c.f_a for c in clips]).astype(np.float64)  # (F, A)
    parts = [np.array([len(nl)]), nl.sum(0), (nl**2).sum(0), audio.sum(0), (audio**2).sum(0)]
    return torch.from_numpy(np.concatenate(parts))


def stats_from_moments(m: torch.Tensor, nl_dim: int) -> NormStats:
    """Mean and std from summed ``moments``; a (near-)constant channel keeps std 1."""
    m = m.double().cpu().numpy()
    count, rest = m[0], m[1:]
    audio_dim = (len(rest) - 2 * nl_dim) // 2

    def mean_std(total: np.ndarray, squares: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = total / count
        std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
        return mean.astype(np.float32), np.where(std < STD_FLOOR, 1.0, std).astype(np.float32)

    nl_mean, nl_std = mean_std(rest[:nl_dim], rest[nl_dim:2 * nl_dim])
    a = rest[2 * nl_dim:]
    audio_mean, audio_std = mean_std(a[:audio_dim], a[audio_dim:])
    return NormStats(nl_mean, nl_std, audio_mean, audio_std)


@dataclass(frozen=True, eq=False)
class MotionClip:
    """One clip's normalised sequences, as tensors."""

    key: str
    nl: torch.Tensor  # (T, N)
    audio: torch.Tensor  # (T, A)

    @property
    def num_frames(self) -> int:
        return int(self.nl.shape[0])


def normalise_clips(clips: Sequence[ClipFeatures], norm: NormStats) -> list[MotionClip]:
    """The clips' f_nl and f_a normalised with ``norm``."""
    return [MotionClip(c.key, torch.from_numpy(norm.normalise_nl(c.f_nl)),
                       torch.from_numpy(norm.normalise_audio(c.f_a))) for c in clips]


def epoch_windows(lengths: Sequence[int], window: int, seed: int, rank: int, epoch: int) -> list[tuple[int, int]]:
    """One epoch's (clip index, start frame) crops: ``ceil(T / window)`` per clip, shuffled, seeded by
    (seed, rank, epoch)."""
    rng = np.random.default_rng(derive_seed(seed, rank, epoch))
    visits = np.repeat(np.arange(len(lengths)), [math.ceil(t / window) for t in lengths])
    order = rng.permutation(visits)
    return [(int(i), int(rng.integers(0, max(lengths[i] - window, 0) + 1))) for i in order]


def collate_windows(clips: Sequence[MotionClip], picks: Sequence[tuple[int, int]],
                    window: int) -> dict[str, torch.Tensor]:
    """Cut the picked crops and pad them to the longest one.

    Returns:
        ``x0`` (b, W, N) and ``audio`` (b, W, A), zero on padding, and ``valid`` (b, W) bool, W <= window.
    """
    spans = [(clips[i], start, min(window, clips[i].num_frames - start)) for i, start in picks]
    width = max(length for _, _, length in spans)
    first = spans[0][0]
    x0 = torch.zeros(len(spans), width, first.nl.shape[1])  # (b, W, N)
    audio = torch.zeros(len(spans), width, first.audio.shape[1])  # (b, W, A)
    valid = torch.zeros(len(spans), width, dtype=torch.bool)  # (b, W)
    for row, (clip, start, length) in enumerate(spans):
        x0[row, :length] = clip.nl[start:start + length]
        audio[row, :length] = clip.audio[start:start + length]
        valid[row, :length] = True
    return {"x0": x0, "audio": audio, "valid": valid}


def endless_windows(clips: Sequence[MotionClip], window: int, batch_size: int, seed: int, rank: int,
                    epoch: int = 0, position: int = 0) -> Iterator[tuple[int, int, dict[str, torch.Tensor]]]:
    """Batches forever, as (epoch, position, batch): after the batch, the next crop is crop ``position`` of
    epoch ``epoch``, so restarting from the yielded pair replays the stream exactly. Batches run across
    epoch ends (a rank with few clips still fills its batch)."""
    lengths = [c.num_frames for c in clips]
    order = epoch_windows(lengths, window, seed, rank, epoch)
    while True:
        picks: list[tuple[int, int]] = []
        while len(picks) < batch_size:
            if position >= len(order):
                epoch, position = epoch + 1, 0
                order = epoch_windows(lengths, window, seed, rank, epoch)
            take = min(batch_size - len(picks), len(order) - position)
            picks += order[position:position + take]
            position += take
        yield epoch, position, collate_windows(clips, picks, window)


def speaking_track(clip: ClipFeatures) -> np.ndarray | None:
    """The sample corpus's per-frame speech activity (T,) from the clip's truth, or None (real data)."""
    motion = (clip.truth or {}).get("motion", {})
    if "speaking" not in motion:
        return None
    return np.asarray(motion["speaking"], np.float32)[:clip.num_frames]


@dataclass(frozen=True, eq=False)
class ValWindows:
    """The validation set: the first window of each val clip, audio normalised, truth raw."""

    keys: list[str]
    audio: torch.Tensor  # (V, W, A) normalised, zero on padding
    valid: torch.Tensor  # (V, W) bool
    truth: list[np.ndarray]  # V x (T_i, N) raw f_nl, T_i <= W
    speaking: list[np.ndarray] | None  # V x (T_i,), None unless every clip has the truth


def val_windows(clips: Sequence[ClipFeatures], norm: NormStats, window: int, max_clips: int) -> ValWindows:
    """The first ``window`` frames of each of the first ``max_clips`` val clips."""
    chosen = list(clips)[:max_clips]
    motion = normalise_clips(chosen, norm)
    batch = collate_windows(motion, [(i, 0) for i in range(len(motion))], window)
    lengths = batch["valid"].sum(1).tolist()
    tracks = [speaking_track(c) for c in chosen]
    speaking = None if any(t is None for t in tracks) else [t[:n] for t, n in zip(tracks, lengths, strict=True)]
    return ValWindows([c.key for c in chosen], batch["audio"], batch["valid"],
                      [c.f_nl[:n] for c, n in zip(chosen, lengths, strict=True)], speaking)
