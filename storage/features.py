"""Per-clip feature sequences for the priors: the non-lip features f_nl and the audio features f_a of every
frame, written by ``extract_features`` and read by ``train_prior`` / ``train_prior_ar``.

Layout of a features folder (local or ``s3://``)::

    FOLDER/{split}/{shard_stem}.parquet    one file per preprocessed shard, e.g. train/train-000003.parquet
    FOLDER/info.json                       widths, model snapshot hash, clip counts (written last)

Each parquet row is one clip: ``key``, ``identity``, ``split``, ``num_frames`` (T), ``f_nl`` (T*nl_dim
float32, row-major), ``f_a`` (T*audio_dim float32), ``nl_dim``, ``audio_dim`` and ``truth`` (the sample
corpus's motion truth as JSON, or null for real data). One file per shard keeps extraction resumable
shard by shard and lets readers split files over ranks as they split shards.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from thpad.storage.uri import Storage, basename, join

INFO_FILE = "info.json"
SCHEMA = pa.schema([
    ("key", pa.string()), ("identity", pa.string()), ("split", pa.string()), ("num_frames", pa.int32()),
    ("nl_dim", pa.int32()), ("audio_dim", pa.int32()),
    ("f_nl", pa.list_(pa.float32())), ("f_a", pa.list_(pa.float32())), ("truth", pa.string()),
])


@dataclass(frozen=True, eq=False)
class ClipFeatures:
    """One clip's feature sequences (and, for the sample corpus, its motion truth)."""

    key: str
    identity: str
    split: str
    f_nl: np.ndarray  # (T, nl_dim) float32
    f_a: np.ndarray  # (T, audio_dim) float32
    truth: dict[str, Any] | None  # {"motion": {name: [T floats]}, "events": [...]} or None

    def __post_init__(self) -> None:
        if self.f_nl.ndim != 2 or self.f_a.ndim != 2 or self.f_nl.shape[0] != self.f_a.shape[0]:
            raise ValueError(f"clip {self.key!r}: f_nl {self.f_nl.shape} and f_a {self.f_a.shape} must be "
                             "(T, nl_dim) and (T, audio_dim) with the same T")

    @property
    def num_frames(self) -> int:
        """T."""
        return int(self.f_nl.shape[0])


def feature_file_uri(folder: str, split: str, shard_uri: str) -> str:
    """``FOLDER/{split}/{stem}.parquet`` for the preprocessed shard ``.../{stem}.tar``."""
    stem = basename(shard_uri).removesuffix(".tar")
    return join(folder, split, f"{stem}.parquet")


def info_uri(folder: str) -> str:
    """``FOLDER/info.json``."""
    return join(folder, INFO_FILE)


def _row(clip: ClipFeatures) -> dict[str, Any]:
    return {"key": clip.key, "identity": clip.identity, "split": clip.split, "num_frames": clip.num_frames,
            "nl_dim": int(clip.f_nl.shape[1]), "audio_dim": int(clip.f_a.shape[1]),
            "f_nl": np.ascontiguousarray(clip.f_nl, np.float32).ravel(),
            "f_a": np.ascontiguousarray(clip.f_a, np.float32).ravel(),
            "truth": None if clip.truth is None else json.dumps(clip.truth, sort_keys=True)}


def write_feature_file(clips: Iterable[ClipFeatures], uri: str, storage: Storage) -> int:
    """Write clips to one parquet file, atomically (temporary name, then rename). Returns the row count."""
    rows = [_row(clip) for clip in clips]
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    storage.write_bytes_atomic(uri, buffer.getvalue())
    return len(rows)


def _clip(row: Mapping[str, Any]) -> ClipFeatures:
    t = int(row["num_frames"])
    f_nl = np.asarray(row["f_nl"], np.float32).reshape(t, int(row["nl_dim"]))  # (T, nl_dim)
    f_a = np.asarray(row["f_a"], np.float32).reshape(t, int(row["audio_dim"]))  # (T, audio_dim)
    truth = json.loads(row["truth"]) if row["truth"] else None
    return ClipFeatures(row["key"], row["identity"], row["split"], f_nl, f_a, truth)


def read_feature_file(uri: str, storage: Storage) -> list[ClipFeatures]:
    """Every clip of one feature file, in the stored order."""
    table = pq.read_table(io.BytesIO(storage.read_bytes(uri)), schema=SCHEMA)
    return [_clip(row) for row in table.to_pylist()]


def list_feature_files(folder: str, split: str, storage: Storage) -> list[str]:
    """The feature files of a split, sorted by name (empty when the split has none)."""
    return sorted(storage.list_files(join(folder, split), ".parquet"))


def iter_features(uris: Sequence[str], storage: Storage) -> Iterator[ClipFeatures]:
    """Clips of the given feature files, file by file."""
    for uri in uris:
        yield from read_feature_file(uri, storage)


def read_split(folder: str, split: str, storage: Storage) -> list[ClipFeatures]:
    """All clips of one split (small enough to hold in memory: 42 + 512 floats per frame)."""
    return list(iter_features(list_feature_files(folder, split, storage), storage))


def write_info(folder: str, info: Mapping[str, Any], storage: Storage) -> None:
    """Write ``info.json`` (atomically; the extractor writes it last, as a completion mark)."""
    storage.write_bytes_atomic(info_uri(folder), json.dumps(dict(info), indent=2, sort_keys=True).encode())


def read_info(folder: str, storage: Storage) -> dict[str, Any]:
    """``info.json`` of a features folder."""
    return json.loads(storage.read_bytes(info_uri(folder)))
