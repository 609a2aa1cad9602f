"""The clips the suite evaluates: preprocessed clips of the chosen splits, read from their shards, with everything the
protocols need computed once per clip (real frames at the model's size, the codes of its audio and of its frames).

The codes come from the bundle's own networks, exactly as generation computes them (``TalkingHeadModel``): f_a and f_l
from the clip's audio, the reconstruction's f_nl from E_v of its frames, the identity from its first frame.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from thpad.models.generation import Identity, encode_identity, encode_nonlip
from thpad.pipelines.generate.model import TalkingHeadModel
from thpad.pipelines.generate.tensors import to_model_input
from thpad.pipelines.generate.writer import resize_frames
from thpad.storage.manifest import list_shards
from thpad.storage.readers import iter_clips, to_tensor
from thpad.storage.shards import ClipSample
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)
TRUTH_FACTORS = ("yaw", "pitch", "roll", "blink", "mouth", "brow")  # the corpus's truth the measurer is validated on


@dataclass(frozen=True, eq=False)
class EvalClip:
    """One evaluated clip: T frames (the shorter of its video and its audio codes)."""

    key: str
    split: str
    frames: np.ndarray  # (T, S, S, 3) uint8 RGB at the model's size
    audio: np.ndarray  # (N,) float32 PCM at the bundle's rate
    f_a: np.ndarray  # (T, A) the prior's audio features
    f_l: np.ndarray  # (T, lip) the generator's lip code
    f_nl: np.ndarray  # (T, N) E_v's non-lip code of the real frames (the reconstruction's)
    identity: Identity  # E_id of frame 0
    truth: dict[str, np.ndarray] | None  # TRUTH_FACTORS -> (T,), the sample corpus's; None for real corpora

    @property
    def num_frames(self) -> int:
        return len(self.frames)


def read_truth(sample: ClipSample, num_frames: int) -> dict[str, np.ndarray] | None:
    """The corpus's per-frame truth of ``TRUTH_FACTORS`` (first ``num_frames``), or None when the clip has none."""
    motion = (sample.meta.get("truth") or {}).get("motion")
    if not motion or any(k not in motion for k in TRUTH_FACTORS):
        return None
    return {k: np.asarray(motion[k], np.float64)[:num_frames] for k in TRUTH_FACTORS}


def eval_clip(model: TalkingHeadModel, sample: ClipSample, split: str) -> EvalClip:
    """Everything the protocols need of one preprocessed clip (see the module docstring)."""
    size = model.image_size
    pcm = np.asarray(sample.audio, np.float32)
    f_a, f_l = model.audio_codes(pcm)  # (L, A), (L, lip)
    T = min(sample.num_frames, len(f_a))
    frames = resize_frames(sample.frames[:T], size)  # (T, S, S, 3), area interpolation as the model's input
    x = to_tensor(frames).to(model.device)  # (T, 3, S, S)
    f_nl = encode_nonlip(model.head, x)  # (T, N)
    identity = encode_identity(model.head, to_model_input(frames[0], size).to(model.device))
    return EvalClip(sample.key, split, frames, pcm, f_a[:T], f_l[:T], f_nl, identity, read_truth(sample, T))


def iter_split(preprocessed: str, split: str, limit: int, storage: Storage) -> Iterator[ClipSample]:
    """The first ``limit`` clips of a split (0: all) in shard order, which is key order within a shard."""
    count = 0
    for sample in iter_clips(list_shards(preprocessed, split, storage), storage):
        if limit and count >= limit:
            return
        count += 1
        yield sample


@torch.no_grad()
def load_clips(model: TalkingHeadModel, preprocessed: str, splits: Sequence[str], per_split: int,
               storage: Storage) -> list[EvalClip]:
    """The evaluated clips of every split; a split with no shard is skipped with a warning.

    Raises:
        ValueError: no split has a clip (names the folder and the splits).
    """
    clips = []
    for split in splits:
        found = [eval_clip(model, s, split) for s in iter_split(preprocessed, split, per_split, storage)]
        if not found:
            log.warning("%s: split %r has no clip; it is not evaluated", preprocessed, split)
        clips += found
    if not clips:
        raise ValueError(f"{preprocessed}: no clip in the splits {list(splits)} to evaluate")
    return clips


def train_frames(preprocessed: str, clips: int, size: int, storage: Storage, every: int = 4) -> list[np.ndarray]:
    """Real frames of the first ``clips`` train clips, every ``every``-th, at ``size``: the expression PCA's data."""
    return [resize_frames(s.frames[::every], size) for s in iter_split(preprocessed, "train", clips, storage)]
