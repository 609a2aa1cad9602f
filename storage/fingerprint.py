"""Content fingerprints: 16 hex digits of sha256, over a file, a shard stream or a stage's output folder. Training
run keys and resume checks compare them, so an input re-made with other bytes under the same names is noticed.
"""

from __future__ import annotations

import hashlib
import json
from typing import IO, Any

from thpad.storage.features import info_uri, list_feature_files
from thpad.storage.manifest import manifest_uri
from thpad.storage.progress import record_uris
from thpad.storage.uri import Storage, basename

HEX_DIGITS = 16
FEATURE_SPLITS = ("train", "val")
_READ_CHUNK = 1 << 20


def short(digest: Any) -> str:
    """The fingerprint of a finished ``hashlib`` digest: its first ``HEX_DIGITS`` hex digits."""
    return digest.hexdigest()[:HEX_DIGITS]


def bytes_fingerprint(data: bytes) -> str:
    """The fingerprint of some bytes."""
    return short(hashlib.sha256(data))


def file_fingerprint(uri: str, storage: Storage) -> str:
    """The fingerprint of one file, e.g. an earlier stage's snapshot."""
    return bytes_fingerprint(storage.read_bytes(uri))


class HashingStream:
    """A read-only stream that hashes what passes through it (sha256)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.digest = raw, hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.digest.update(data)
        return data

    def finish(self) -> str:
        """Read what is left (a tar's end blocks) and return the fingerprint of the whole content."""
        while self.read(_READ_CHUNK):
            pass
        return short(self.digest)


def stream_fingerprint(uri: str, storage: Storage) -> str:
    """The fingerprint of a file read in chunks (a shard: nothing decoded, nothing held whole)."""
    with storage.open_read(uri) as raw:
        return HashingStream(raw).finish()


def shards_fingerprint(folder: str, storage: Storage) -> str:
    """The fingerprint of a preprocess out folder: its manifest and its shard progress records.

    The manifest names every clip, shard and frame count; the records carry the preprocessing config's
    fingerprint and each shard's sha256, so a change that alters pixels but not the manifest (another
    preprocessing config, or the same clip names re-rendered from changed sources) still changes the hash.
    """
    digest = hashlib.sha256(storage.read_bytes(manifest_uri(folder)))
    for uri in record_uris(folder, storage):
        record = json.loads(storage.read_bytes(uri))
        digest.update(f"{record.get('fingerprint', '')}:{record.get('sha256', '')}".encode())
    return short(digest)


def features_fingerprint(folder: str, storage: Storage) -> str:
    """The fingerprint of a features folder: its info.json and every train/val file's bytes."""
    digest = hashlib.sha256(storage.read_bytes(info_uri(folder)))
    for split in FEATURE_SPLITS:
        for uri in list_feature_files(folder, split, storage):
            digest.update(f"{split}/{basename(uri)}".encode())
            digest.update(hashlib.sha256(storage.read_bytes(uri)).digest())
    return short(digest)
