"""The local/S3 filesystem layer: the same operations on both, atomic writes, errors that name the URI."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from thpad.storage.uri import S3Config, Storage, StorageError, basename, is_s3, join, split_s3


def test_join_split_basename() -> None:
    assert join("s3://bkt/out/", "shards", "/train-000000.tar") == "s3://bkt/out/shards/train-000000.tar"
    assert join("s3://bkt", "a") == "s3://bkt/a"
    assert join("/tmp/out", "shards", "x.tar") == "/tmp/out/shards/x.tar"
    assert split_s3("s3://bkt/a/b.tar") == ("bkt", "a/b.tar")
    assert basename("s3://bkt/a/b.tar") == basename("/x/a/b.tar") == "b.tar"
    assert is_s3("s3://bkt/x") and not is_s3("/s3/x")
    with pytest.raises(ValueError, match="no bucket"):
        split_s3("s3:///key")


@pytest.fixture(params=["local", "s3"])
def root_and_storage(request, local_root: str) -> tuple[str, Storage]:
    if request.param == "local":
        return local_root, Storage()
    return request.getfixturevalue("s3_root"), request.getfixturevalue("s3_storage")


def test_write_read_list_delete(root_and_storage: tuple[str, Storage]) -> None:
    root, storage = root_and_storage
    names = ["b/2.tar", "a.tar", "b/1.tar", "c.json"]
    for name in names:
        storage.write_bytes_atomic(join(root, name), name.encode())
    assert storage.list_files(root, ".tar") == [join(root, n) for n in ("a.tar", "b/1.tar", "b/2.tar")]
    assert storage.list_files(join(root, "missing")) == []
    assert storage.read_bytes(join(root, "c.json")) == b"c.json"
    with storage.open_read(join(root, "b/1.tar")) as stream:
        assert stream.read(3) + stream.read() == b"b/1.tar"
    assert storage.exists(join(root, "a.tar")) and not storage.exists(join(root, "nope.tar"))
    storage.delete(join(root, "a.tar"))
    storage.delete(join(root, "a.tar"))  # deleting what is gone is not an error
    assert not storage.exists(join(root, "a.tar"))


def test_upload_copy_and_move(root_and_storage: tuple[str, Storage], tmp_path: Path) -> None:
    root, storage = root_and_storage
    source = tmp_path / "blob.bin"
    source.write_bytes(b"x" * 100_000)
    storage.upload_file_atomic(source, join(root, "copy.bin"))
    assert source.exists()
    storage.upload_file_atomic(source, join(root, "deep/moved.bin"), remove_source=True)
    assert not source.exists()
    assert storage.read_bytes(join(root, "copy.bin")) == storage.read_bytes(join(root, "deep/moved.bin"))


def test_local_writes_leave_no_temporary_files(local_root: str) -> None:
    storage = Storage()
    storage.write_bytes_atomic(join(local_root, "f.bin"), b"1")
    storage.write_bytes_atomic(join(local_root, "f.bin"), b"2")
    assert sorted(p.name for p in Path(local_root).iterdir()) == ["f.bin"]
    assert storage.read_bytes(join(local_root, "f.bin")) == b"2"


def test_local_errors_name_operation_and_path(local_root: str) -> None:
    storage = Storage()
    missing = join(local_root, "missing.tar")
    with pytest.raises(StorageError, match=f"cannot read {missing}: No such file") as info:
        storage.read_bytes(missing)
    assert info.value.uri == missing and info.value.operation == "read"
    Path(local_root).mkdir(parents=True)
    with pytest.raises(StorageError, match="cannot write"):
        storage.write_bytes_atomic(local_root, b"a folder is in the way")


def test_s3_errors_name_uri_code_and_endpoint(s3_root: str, s3_storage: Storage, s3_server) -> None:
    uri = join(s3_root, "missing.tar")
    with pytest.raises(StorageError, match=f"cannot read {uri}: NoSuchKey") as info:
        s3_storage.read_bytes(uri)
    assert s3_server.endpoint in str(info.value)
    with pytest.raises(StorageError, match="cannot write s3://no-such-bucket-here/x: NoSuchBucket"):
        s3_storage.write_bytes_atomic("s3://no-such-bucket-here/x", b"")
    with pytest.raises(StorageError, match="cannot write s3://no-such-bucket-here/y: NoSuchBucket"):
        s3_storage.upload_file_atomic(__file__, "s3://no-such-bucket-here/y")


def test_unreachable_endpoint_is_named(aws_env) -> None:
    storage = Storage(S3Config(endpoint_url="http://127.0.0.1:9", region="us-east-1", max_attempts=1))
    with pytest.raises(StorageError, match=r"cannot check s3://bkt/k: connection refused \(endpoint http://127.0.0.1:9\)"):
        storage.exists("s3://bkt/k")


def test_storage_and_errors_pickle(s3_storage: Storage, s3_root: str) -> None:
    s3_storage.write_bytes_atomic(join(s3_root, "p"), b"p")  # creates the client
    clone = pickle.loads(pickle.dumps(s3_storage))
    assert clone.s3 == s3_storage.s3 and clone.read_bytes(join(s3_root, "p")) == b"p"
    err = pickle.loads(pickle.dumps(StorageError("read", "s3://b/k", "boom", "http://e")))
    assert str(err) == "cannot read s3://b/k: boom (endpoint http://e)" and err.uri == "s3://b/k"
    assert isinstance(err, OSError)


def test_local_version_follows_the_bytes(local_root: str) -> None:
    storage = Storage()
    uri = join(local_root, "clip.mp4")
    storage.write_bytes_atomic(uri, b"first")
    before = storage.version(uri)
    assert storage.version(uri) == before  # untouched: the same
    stat = Path(uri).stat()
    storage.write_bytes_atomic(uri, b"other")  # same name, same size, different bytes
    os.utime(uri, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a different mtime even on coarse clocks
    assert storage.version(uri) != before
    assert storage.version(uri) == storage.version(uri)


def test_s3_version_follows_the_bytes(s3_root: str, s3_storage: Storage) -> None:
    uri = join(s3_root, "clip.mp4")
    s3_storage.write_bytes_atomic(uri, b"first")
    before = s3_storage.version(uri)
    assert s3_storage.version(uri) == before
    s3_storage.write_bytes_atomic(uri, b"other")  # same size: only the ETag tells them apart
    assert s3_storage.version(uri) != before


def test_version_of_missing_file_names_it(root_and_storage: tuple[str, Storage]) -> None:
    root, storage = root_and_storage
    uri = join(root, "missing.mp4")
    with pytest.raises(StorageError, match=f"cannot stat {uri}: ") as info:
        storage.version(uri)
    assert info.value.uri == uri and info.value.operation == "stat"
