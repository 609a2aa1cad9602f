"""The preprocessed-data folder layout and its two tables: ``manifest.parquet`` and ``rejects.parquet``.

::

    OUT/manifest.parquet          one row per accepted clip (MANIFEST_SCHEMA), sorted by key
    OUT/rejects.parquet           one row per refused input (REJECTS_SCHEMA), sorted by source
    OUT/shards/{split}-NNNNNN.tar the WebDataset shards (storage/shards.py)

Both tables have explicit pyarrow schemas, so an empty table still carries its columns and types. They
are written whole and atomically (temporary file + rename, or one S3 PUT) and read back as Tables.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from thpad.storage.shards import SCHEMA_VERSION, ClipSample, shard_name
from thpad.storage.uri import Storage, join

MANIFEST_NAME = "manifest.parquet"
REJECTS_NAME = "rejects.parquet"
SHARDS_DIR = "shards"

MANIFEST_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),  # the shard sample key
    pa.field("identity", pa.string(), nullable=False),  # e.g. id00012
    pa.field("video", pa.string(), nullable=False),  # YouTube id, e.g. 21Uxsk56VDQ
    pa.field("utterance", pa.string(), nullable=False),  # e.g. 00001
    pa.field("split", pa.string(), nullable=False),  # train / val / test
    pa.field("shard", pa.string(), nullable=False),  # shard file name below OUT/shards, e.g. train-000000.tar
    pa.field("num_frames", pa.int32(), nullable=False),
    pa.field("fps", pa.float32(), nullable=False),
    pa.field("duration_s", pa.float32(), nullable=False),  # num_frames / fps
    pa.field("sample_rate", pa.int32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # the input video, relative to the corpus root
    pa.field("schema_version", pa.int16(), nullable=False),  # shard schema the clip was written with
])

REJECTS_SCHEMA = pa.schema([
    pa.field("source", pa.string(), nullable=False),  # URI of the refused input
    pa.field("key", pa.string(), nullable=True),  # its would-be key, when known
    pa.field("stage", pa.string(), nullable=False),  # where it was refused: decode, detect, landmarks, ...
    pa.field("reason", pa.string(), nullable=False),  # why, for a human
])


def manifest_uri(out: str) -> str:
    """``OUT/manifest.parquet``."""
    return join(out, MANIFEST_NAME)


def rejects_uri(out: str) -> str:
    """``OUT/rejects.parquet``."""
    return join(out, REJECTS_NAME)


def shard_uri(out: str, split: str, index: int) -> str:
    """``OUT/shards/{split}-{index:06d}.tar``."""
    return join(out, SHARDS_DIR, shard_name(split, index))


def list_shards(out: str, split: str, storage: Storage) -> list[str]:
    """The shard URIs of one split, sorted (``OUT/shards/{split}-*.tar``)."""
    return [u for u in storage.list_files(join(out, SHARDS_DIR), ".tar")
            if u.rsplit("/", 1)[-1].startswith(f"{split}-")]


def required_shards(out: str, split: str, storage: Storage, needed_by: str) -> list[str]:
    """``list_shards``, refusing an empty split with a ``ValueError`` that says who needs it and how to get it
    (preprocessing writes no shards for a split the corpus cannot fill, such as ``test`` from a dev folder)."""
    found = list_shards(out, split, storage)
    if not found:
        raise ValueError(f"{needed_by} needs {split} clips, but {join(out, SHARDS_DIR)} has no {split}-*.tar shard: "
                         f"the preprocessed corpus had none (see the warning of `thpad preprocess`); preprocess a "
                         f"corpus that fills the {split} split")
    return found


def manifest_row(sample: ClipSample, shard: str) -> dict[str, Any]:
    """The manifest row of a clip written to shard file ``shard`` (a name such as ``train-000000.tar``)."""
    meta = sample.meta
    return {
        "key": sample.key, "identity": meta["identity"], "video": meta["video"],
        "utterance": meta["utterance"], "split": meta["split"], "shard": shard,
        "num_frames": sample.num_frames, "fps": float(meta["fps"]),
        "duration_s": sample.num_frames / float(meta["fps"]), "sample_rate": sample.sample_rate,
        "source": meta["source"], "schema_version": SCHEMA_VERSION,
    }


def _table(rows: Iterable[Mapping[str, Any]] | pa.Table, schema: pa.Schema, sort_by: list[str]) -> pa.Table:
    """Rows (dicts with exactly the schema's columns) or a Table, as a Table of ``schema``, sorted."""
    if isinstance(rows, pa.Table):
        table = rows.select(schema.names) if set(rows.column_names) == set(schema.names) else None
        if table is None:
            raise ValueError(f"table columns {sorted(rows.column_names)} != schema {sorted(schema.names)}")
        table = table.cast(schema)
    else:
        rows = list(rows)
        for i, row in enumerate(rows):
            if set(row) != set(schema.names):
                extra, missing = sorted(set(row) - set(schema.names)), sorted(set(schema.names) - set(row))
                raise ValueError(f"row {i}: unknown columns {extra}, missing columns {missing}")
        table = pa.Table.from_pylist(rows, schema=schema)
    return table.sort_by([(c, "ascending") for c in sort_by])


def manifest_table(rows: Iterable[Mapping[str, Any]] | pa.Table) -> pa.Table:
    """Validate and sort manifest rows by key.

    Raises:
        ValueError: a row has unknown or missing columns, or a key appears twice.
    """
    table = _table(rows, MANIFEST_SCHEMA, ["key"])
    keys = table.column("key").to_pylist()
    if len(set(keys)) != len(keys):
        dup = next(k for i, k in enumerate(keys) if i and keys[i - 1] == k)
        raise ValueError(f"manifest: key {dup!r} appears twice")
    return table


def rejects_table(rows: Iterable[Mapping[str, Any]] | pa.Table) -> pa.Table:
    """Validate and sort reject rows by (source, stage, reason)."""
    return _table(rows, REJECTS_SCHEMA, ["source", "stage", "reason"])


def _write(table: pa.Table, uri: str, storage: Storage) -> str:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return storage.write_bytes_atomic(uri, buf.getvalue())


def _read(uri: str, schema: pa.Schema, storage: Storage) -> pa.Table:
    table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    if not table.schema.equals(schema):
        raise ValueError(f"{uri}: schema {table.schema} does not match the expected {schema}")
    return table


def write_manifest(rows: Iterable[Mapping[str, Any]] | pa.Table, uri: str, storage: Storage) -> pa.Table:
    """Write ``manifest.parquet`` atomically.

    Args:
        rows: manifest rows (see ``manifest_row``) or a Table with the manifest's columns.
        uri: target, usually ``manifest_uri(out)``.
        storage: where to write.
    Returns:
        The table written (sorted by key).
    """
    table = manifest_table(rows)
    _write(table, uri, storage)
    return table


def read_manifest(uri: str, storage: Storage) -> pa.Table:
    """Read ``manifest.parquet`` (raises ``ValueError`` on a schema mismatch, ``StorageError`` on I/O)."""
    return _read(uri, MANIFEST_SCHEMA, storage)


def write_rejects(rows: Iterable[Mapping[str, Any]] | pa.Table, uri: str, storage: Storage) -> pa.Table:
    """Write ``rejects.parquet`` atomically; rows are dicts with source, key, stage and reason."""
    table = rejects_table(rows)
    _write(table, uri, storage)
    return table


def read_rejects(uri: str, storage: Storage) -> pa.Table:
    """Read ``rejects.parquet``."""
    return _read(uri, REJECTS_SCHEMA, storage)


def identity_indices(manifest: pa.Table) -> dict[str, int]:
    """Identities of a manifest (or of one split of it) numbered 0.. in sorted order."""
    return {name: i for i, name in enumerate(sorted(set(manifest.column("identity").to_pylist())))}
