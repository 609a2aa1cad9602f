"""Manifest and rejects tables: explicit schemas, round trips (local and S3), empty tables, validation,
and the output folder layout."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from thpad.storage.manifest import (
    MANIFEST_SCHEMA,
    REJECTS_SCHEMA,
    identity_indices,
    list_shards,
    manifest_row,
    manifest_uri,
    read_manifest,
    read_rejects,
    rejects_uri,
    shard_uri,
    write_manifest,
    write_rejects,
)
from thpad.storage.shards import SCHEMA_VERSION
from thpad.storage.uri import Storage

REJECTS = [
    {"source": "s3://corpus/b.mp4", "key": None, "stage": "decode", "reason": "no video stream"},
    {"source": "s3://corpus/a.mp4", "key": "id1-a-00001", "stage": "detect", "reason": "no face in 40% of frames"},
]


@pytest.fixture(params=["local", "s3"])
def out_and_storage(request, local_root: str) -> tuple[str, Storage]:
    if request.param == "local":
        return local_root, Storage()
    return request.getfixturevalue("s3_root"), request.getfixturevalue("s3_storage")


def test_layout() -> None:
    assert manifest_uri("s3://b/out") == "s3://b/out/manifest.parquet"
    assert rejects_uri("/data/out") == "/data/out/rejects.parquet"
    assert shard_uri("s3://b/out", "val", 2) == "s3://b/out/shards/val-000002.tar"


def test_manifest_round_trip(out_and_storage: tuple[str, Storage], clip_factory) -> None:
    out, storage = out_and_storage
    clips = [clip_factory(i, num_frames=10 + i) for i in (1, 0)]
    rows = [manifest_row(c, "train-000000.tar") for c in clips]
    written = write_manifest(rows, manifest_uri(out), storage)
    table = read_manifest(manifest_uri(out), storage)
    assert table.schema.equals(MANIFEST_SCHEMA) and table.equals(written)
    assert table.column("key").to_pylist() == sorted(c.key for c in clips)
    first = table.to_pylist()[0]
    assert first["identity"] == "id00000" and first["video"] == "vid_0-x" and first["utterance"] == "00001"
    assert first["num_frames"] == 10 and first["duration_s"] == pytest.approx(0.4)
    assert first["schema_version"] == SCHEMA_VERSION and first["shard"] == "train-000000.tar"


def test_rejects_round_trip(out_and_storage: tuple[str, Storage]) -> None:
    out, storage = out_and_storage
    write_rejects(REJECTS, rejects_uri(out), storage)
    table = read_rejects(rejects_uri(out), storage)
    assert table.schema.equals(REJECTS_SCHEMA)
    assert table.to_pylist() == sorted(REJECTS, key=lambda r: r["source"])


def test_empty_tables_keep_their_schema(out_and_storage: tuple[str, Storage]) -> None:
    out, storage = out_and_storage
    write_manifest([], manifest_uri(out), storage)
    write_rejects([], rejects_uri(out), storage)
    manifest, rejects = read_manifest(manifest_uri(out), storage), read_rejects(rejects_uri(out), storage)
    assert manifest.num_rows == 0 and manifest.schema.equals(MANIFEST_SCHEMA)
    assert rejects.num_rows == 0 and rejects.schema.equals(REJECTS_SCHEMA)


def test_rows_are_validated(local_root: str, clip_factory) -> None:
    row = manifest_row(clip_factory(0), "train-000000.tar")
    uri = manifest_uri(local_root)
    with pytest.raises(ValueError, match=r"unknown columns \['extra'\], missing columns \[\]"):
        write_manifest([dict(row, extra=1)], uri, Storage())
    with pytest.raises(ValueError, match=r"missing columns \['fps'\]"):
        write_manifest([{k: v for k, v in row.items() if k != "fps"}], uri, Storage())
    with pytest.raises(ValueError, match="appears twice"):
        write_manifest([row, row], uri, Storage())
    with pytest.raises(ValueError, match="missing columns"):
        write_rejects([{"source": "x", "stage": "decode"}], rejects_uri(local_root), Storage())
    assert not Storage().exists(uri)


def test_a_table_with_other_columns_is_refused(local_root: str) -> None:
    Path(local_root).mkdir(parents=True)
    uri = manifest_uri(local_root)
    pq.write_table(pa.table({"key": ["a"]}), uri)
    with pytest.raises(ValueError, match="does not match"):
        read_manifest(uri, Storage())


def test_list_shards_and_identity_index(local_root: str, clip_factory) -> None:
    storage = Storage()
    for split, index in (("train", 1), ("val", 0), ("train", 0)):
        storage.write_bytes_atomic(shard_uri(local_root, split, index), b"")
    assert list_shards(local_root, "train", storage) == [shard_uri(local_root, "train", i) for i in (0, 1)]
    rows = [manifest_row(clip_factory(i, identity=name), "train-000000.tar")
            for i, name in enumerate(["id00009", "id00001", "id00009"])]
    assert identity_indices(write_manifest(rows, manifest_uri(local_root), storage)) == {"id00001": 0, "id00009": 1}
