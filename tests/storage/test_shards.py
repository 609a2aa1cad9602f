"""The shard writer: round trips (local and S3), byte-identical reruns, atomicity, schema checks, and an
S3 server that goes away mid-run."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from tests.storage.s3server import S3Server
from thpad.storage.readers import iter_clips
from thpad.storage.shards import MEMBERS, SCHEMA_VERSION, ClipSample, encode_sample, shard_name, write_shard
from thpad.storage.uri import Storage, StorageError, join


def assert_same_clip(got: ClipSample, want: ClipSample) -> None:
    assert got.key == want.key and got.sample_rate == want.sample_rate
    assert got.meta == want.meta
    for name in ("lmk", "mel", "xform"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert got.frames.shape == want.frames.shape and got.frames.dtype == np.uint8
    assert np.abs(got.frames.astype(int) - want.frames).mean() < 2.0  # JPEG q90
    np.testing.assert_allclose(got.audio, want.audio, atol=1 / 32768 + 1e-6)  # 16-bit FLAC


def test_shard_name() -> None:
    assert shard_name("train", 3) == "train-000003.tar"


@pytest.mark.parametrize("where", ["local", "s3"])
def test_round_trip(where: str, request, clip_factory) -> None:
    root = request.getfixturevalue("local_root" if where == "local" else "s3_root")
    storage = Storage() if where == "local" else request.getfixturevalue("s3_storage")
    clips = [clip_factory(i, num_frames=8 + i) for i in (2, 0, 1)]
    uri = join(root, shard_name("train", 0))
    keys = write_shard(clips, uri, storage).keys
    assert keys == sorted(c.key for c in clips)
    got = list(iter_clips([uri], storage))
    assert [g.key for g in got] == keys  # written in key order whatever the input order
    for g in got:
        assert_same_clip(g, next(c for c in clips if c.key == g.key))


def test_byte_identical_and_fixed_headers(local_root: str, clip_factory) -> None:
    storage = Storage()
    clips = [clip_factory(i) for i in range(3)]
    first, second = join(local_root, "a.tar"), join(local_root, "b.tar")
    written = write_shard(clips, first, storage)
    assert write_shard(reversed(clips), second, storage).sha256 == written.sha256
    assert Path(first).read_bytes() == Path(second).read_bytes()
    assert written.sha256 == hashlib.sha256(Path(first).read_bytes()).hexdigest()[:16]
    changed = join(local_root, "c.tar")  # the same keys with other content: another hash
    assert write_shard([clip_factory(0, num_frames=9), *clips[1:]], changed, storage).sha256 != written.sha256
    with tarfile.open(first) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == [f"{c.key}.{m}" for c in clips for m in MEMBERS]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {(0, 0, 0, "", "", 0o644)}
    assert Path(first).stat().st_size % tarfile.RECORDSIZE == 0


def test_webdataset_reads_our_shards(local_root: str, clip_factory) -> None:
    clips = [clip_factory(i) for i in range(2)]
    uri = join(local_root, "w.tar")
    write_shard(clips, uri, Storage())
    samples = list(wds.WebDataset(uri, shardshuffle=False))
    assert [s["__key__"] for s in samples] == [c.key for c in clips]
    assert set(samples[0]) - {"__key__", "__url__", "__local_path__"} == set(MEMBERS)
    assert samples[0]["meta.json"] == encode_sample(clips[0])["meta.json"]


def _failing(clips: list[ClipSample]) -> Iterator[ClipSample]:
    yield clips[0]
    raise RuntimeError("worker killed")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_interrupted_write_leaves_nothing(where: str, request, clip_factory, tmp_path: Path) -> None:
    root = request.getfixturevalue("local_root" if where == "local" else "s3_root")
    storage = Storage() if where == "local" else request.getfixturevalue("s3_storage")
    uri = join(root, shard_name("train", 1))
    scratch = tmp_path / "scratch"  # where an S3 target's tar is built
    with pytest.raises(RuntimeError, match="worker killed"):
        write_shard(_failing([clip_factory(0), clip_factory(1)]), uri, storage, tmp_dir=str(scratch))
    assert not storage.exists(uri)
    assert storage.list_files(root) == []
    debris = Path(root) if where == "local" else scratch
    assert list(debris.iterdir()) == []  # no temporary files left either


def test_bad_samples_are_refused(local_root: str, clip_factory) -> None:
    clip = clip_factory(0)
    bad = {
        "key must match": dataclasses.replace(clip, key="id0.x"),
        "lmk must have shape": dataclasses.replace(clip, lmk=clip.lmk[:, :5]),
        "mel must be": dataclasses.replace(clip, mel=clip.mel[:, 1:]),
        "meta lacks": dataclasses.replace(clip, meta={"identity": "x"}),
        "reserved": dataclasses.replace(clip, meta=dict(clip.meta, schema_version=9)),
        "num_frames": dataclasses.replace(clip, meta=dict(clip.meta, num_frames=3)),
    }
    uri = join(local_root, "bad.tar")
    for message, sample in bad.items():
        with pytest.raises(ValueError, match=message):
            write_shard([sample], uri, Storage())
    with pytest.raises(ValueError, match="appears twice"):
        write_shard([clip, clip], uri, Storage())
    assert not Path(uri).exists()


def test_other_schema_version_is_refused(local_root: str, clip_factory) -> None:
    clip = clip_factory(0)
    members = encode_sample(clip)
    members["meta.json"] = members["meta.json"].replace(
        f'"schema_version": {SCHEMA_VERSION}'.encode(), b'"schema_version": 999')
    uri = join(local_root, "old.tar")
    Path(local_root).mkdir(parents=True)
    with tarfile.open(uri, "w") as tar:
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{clip.key}.{ext}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ValueError, match="schema version 999"):
        list(iter_clips([uri], Storage()))


def test_s3_server_lost_and_back(s3_server: S3Server, clip_factory) -> None:
    """Write a shard, lose the endpoint: the next write and read fail naming the shard; back: both work."""
    server = S3Server().start()  # its own server (same moto backend), so stopping it spares the others
    storage = Storage(server.config())
    root = "s3://thpad-test/lost-and-back"
    first, second = join(root, shard_name("train", 0)), join(root, shard_name("train", 1))
    write_shard([clip_factory(0)], first, storage)
    server.stop()
    with pytest.raises(StorageError, match=f"cannot write {second}: connection refused") as info:
        write_shard([clip_factory(1)], second, storage)
    assert info.value.uri == second and server.endpoint in str(info.value)
    with pytest.raises(StorageError, match=f"cannot read {first}: connection refused"):
        list(iter_clips([first], storage))
    server.start()
    try:
        write_shard([clip_factory(1)], second, storage)
        assert [c.key for c in iter_clips([first, second], storage)] == [clip_factory(i).key for i in (0, 1)]
    finally:
        server.stop()
