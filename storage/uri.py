"""A small filesystem layer over local paths and ``s3://bucket/key`` URIs.

Every byte thpad reads or writes outside ``models/`` goes through a ``Storage``: local files with
temporary-sibling-then-``os.replace`` writes, S3 through one boto3 client (any endpoint, e.g. MinIO
or moto) created lazily and re-created after a fork or unpickling, so a ``Storage`` can be handed to
DataLoader workers and Ray tasks. Credentials come only from the standard AWS environment and config
files. S3 writes are atomic by construction: a single PUT, or a boto3 multipart upload, which S3
only shows once it completes. Every failure is a ``StorageError`` naming the operation and the URI.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from thpad.storage.files import atomic_write_bytes, temp_sibling

S3_SCHEME = "s3://"


class StorageError(OSError):
    """An operation on a URI failed; the message names the operation, the URI and the cause."""

    def __init__(self, operation: str, uri: str, reason: str, endpoint: str | None = None) -> None:
        where = f" (endpoint {endpoint})" if endpoint else ""
        super().__init__(f"cannot {operation} {uri}: {reason}{where}")
        self.operation, self.uri, self.reason, self.endpoint = operation, uri, reason, endpoint

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str | None]]:
        # Ray and multiprocessing pickle exceptions; rebuild from the fields, not from the message.
        return type(self), (self.operation, self.uri, self.reason, self.endpoint)


@dataclass(frozen=True)
class S3Config:
    """Where S3 lives. ``endpoint_url=None`` means AWS itself; ``anon`` sends unsigned requests."""

    endpoint_url: str | None = None
    region: str | None = None
    anon: bool = False
    max_attempts: int = 3
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0


def is_s3(uri: str) -> bool:
    """True for ``s3://`` URIs."""
    return str(uri).startswith(S3_SCHEME)


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    bucket, _, key = uri[len(S3_SCHEME):].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket")
    return bucket, key


def join(uri: str | os.PathLike, *parts: str) -> str:
    """Join path parts onto a local path or an S3 URI with ``/`` (slashes around parts are dropped)."""
    uri = str(uri)
    clean = [p.strip("/") for p in parts if p.strip("/")]
    if not is_s3(uri):
        return str(Path(uri, *clean))
    return "/".join([uri.rstrip("/"), *clean])


def basename(uri: str) -> str:
    """The last path component of a local path or S3 URI."""
    return str(uri).rstrip("/").rsplit("/", 1)[-1]


def _local_reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def _s3_reason(err: Exception) -> str:
    """A short human cause for a botocore error (error code for service errors)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import ClientError, EndpointConnectionError

    if isinstance(err, S3UploadFailedError) and isinstance(err.__context__, Exception):
        err = err.__context__  # boto3's upload wraps the botocore error in a message naming the temp file
    if isinstance(err, ClientError):
        info = err.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', '') or err}".rstrip(": ")
    if isinstance(err, EndpointConnectionError):
        cause = str(err.kwargs.get("error", ""))
        if "Connection refused" in cause:
            return "connection refused"
        return f"endpoint unreachable ({cause.rsplit(': ', 1)[-1] or err})"
    return f"{type(err).__name__}: {err}"


class _GuardedStream:
    """A read-only stream whose I/O errors become ``StorageError`` naming the URI."""

    def __init__(self, raw: Any, fail: Any) -> None:
        self._raw, self._fail = raw, fail

    def read(self, size: int = -1) -> bytes:
        try:
            return self._raw.read() if size is None or size < 0 else self._raw.read(size)
        except Exception as err:  # botocore/urllib3 raise several unrelated types mid-stream
            raise self._fail(err) from err

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> _GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Storage:
    """Local and S3 file operations with one lazily created boto3 client (never shared across processes)."""

    def __init__(self, s3: S3Config | None = None) -> None:
        self.s3 = s3 or S3Config()
        self._client: Any = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"s3": self.s3}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["s3"])

    def __repr__(self) -> str:
        return f"Storage({self.s3!r})"

    def client(self) -> Any:
        """The boto3 S3 client for this process (created on first use and again after a fork)."""
        if self._client is None or self._pid != os.getpid():
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config

            config = Config(
                retries={"max_attempts": self.s3.max_attempts, "mode": "standard"},
                connect_timeout=self.s3.connect_timeout_s,
                read_timeout=self.s3.read_timeout_s,
                signature_version=UNSIGNED if self.s3.anon else None,
            )
            session = boto3.session.Session(region_name=self.s3.region)
            self._client = session.client("s3", endpoint_url=self.s3.endpoint_url, config=config)
            self._pid = os.getpid()
        return self._client

    def _error(self, operation: str, uri: str, err: Exception) -> StorageError:
        if is_s3(uri):
            return StorageError(operation, uri, _s3_reason(err), self.s3.endpoint_url)
        return StorageError(operation, uri, _local_reason(err))

    def exists(self, uri: str) -> bool:
        """True when a file (local) or object (S3) exists at ``uri``."""
        if not is_s3(uri):
            return Path(uri).is_file()
        from botocore.exceptions import ClientError

        bucket, key = split_s3(uri)
        try:
            self.client().head_object(Bucket=bucket, Key=key)
            return True
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise self._error("check", uri, err) from err
        except Exception as err:
            raise self._error("check", uri, err) from err

    def version(self, uri: str) -> str:
        """A cheap identity of the current bytes of the file at ``uri``, without reading them.

        Resumable jobs compare it with the one they recorded to notice a file replaced under the same
        name. Local files give ``"{size}-{st_mtime_ns}"``; S3 objects give ``"{etag}-{size}"`` from one
        ``head_object``. A rewrite that keeps both size and mtime (``cp -p`` of an equal-size file) is
        not seen: the price of never hashing the content.

        Raises:
            StorageError: the file or object is missing or cannot be stat'ed (names the URI).
        """
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                head = self.client().head_object(Bucket=bucket, Key=key)
                etag = head["ETag"].strip('"')  # S3 sends the ETag quoted
                return f"{etag}-{head['ContentLength']}"
            stat = os.stat(uri)
        except Exception as err:
            raise self._error("stat", uri, err) from err
        return f"{stat.st_size}-{stat.st_mtime_ns}"

    def list_files(self, prefix: str, suffix: str = "") -> list[str]:
        """Files below the folder ``prefix`` (recursively) whose names end with ``suffix``, sorted.

        Local temporary files (names starting with ``.``) are skipped. A missing folder is empty.
        """
        if not is_s3(prefix):
            root = Path(prefix)
            found = root.rglob(f"*{suffix}") if root.is_dir() else []
            return sorted(str(p) for p in found if p.is_file() and not p.name.startswith("."))
        bucket, key = split_s3(prefix)
        folder = key.rstrip("/") + "/" if key.strip("/") else ""
        try:
            pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder)
            keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        except Exception as err:
            raise self._error("list", prefix, err) from err
        return sorted(f"{S3_SCHEME}{bucket}/{k}" for k in keys if k.endswith(suffix))

    def read_bytes(self, uri: str) -> bytes:
        """The whole content of ``uri``."""
        with self.open_read(uri) as stream:
            return stream.read()

    def open_read(self, uri: str) -> _GuardedStream:
        """A streaming, read-only binary file object (use as a context manager)."""
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                raw: IO[bytes] = self.client().get_object(Bucket=bucket, Key=key)["Body"]
            else:
                raw = open(uri, "rb")  # noqa: SIM115 - closed by the returned stream
        except Exception as err:
            raise self._error("read", uri, err) from err
        return _GuardedStream(raw, lambda err: self._error("read", uri, err))

    def write_bytes_atomic(self, uri: str, data: bytes) -> str:
        """Write ``data`` so that ``uri`` holds either nothing (or its old content) or all of it."""
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                self.client().put_object(Bucket=bucket, Key=key, Body=data)
            else:
                atomic_write_bytes(uri, data)
        except Exception as err:
            raise self._error("write", uri, err) from err
        return uri

    def upload_file_atomic(self, local_path: str | os.PathLike, uri: str, remove_source: bool = False) -> str:
        """Copy (or with ``remove_source``, move) a finished local file to ``uri`` atomically.

        Local targets get a temporary sibling and ``os.replace``; a move within one filesystem is a
        plain rename. S3 targets get a boto3 upload (multipart above 8 MiB, visible only when complete).
        """
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                self.client().upload_file(str(local_path), bucket, key)
                if remove_source:
                    os.unlink(local_path)
            else:
                _place_local(Path(local_path), Path(uri), remove_source)
        except Exception as err:
            raise self._error("write", uri, err) from err
        return uri

    def delete(self, uri: str) -> None:
        """Remove ``uri``; a missing file or object is not an error."""
        try:
            if is_s3(uri):
                bucket, key = split_s3(uri)
                self.client().delete_object(Bucket=bucket, Key=key)
            else:
                Path(uri).unlink(missing_ok=True)
        except Exception as err:
            raise self._error("delete", uri, err) from err


def _place_local(source: Path, target: Path, remove_source: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if remove_source:
        try:
            os.replace(source, target)
            return
        except OSError:  # another filesystem: fall through to copy + rename
            pass
    tmp = temp_sibling(target)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if remove_source:
        source.unlink()
