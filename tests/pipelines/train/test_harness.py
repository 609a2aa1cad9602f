"""The training harness's input fingerprints: what must make a training stage start fresh instead of resuming."""

from __future__ import annotations

import json
from pathlib import Path

from thpad.storage.fingerprint import shards_fingerprint
from thpad.storage.manifest import manifest_uri
from thpad.storage.uri import Storage, join


def write_folder(root: Path, records: dict[str, dict]) -> str:
    """A preprocess out folder with a manifest and the given progress records (shard name -> record)."""
    folder = str(root)
    Path(manifest_uri(folder)).parent.mkdir(parents=True, exist_ok=True)
    Path(manifest_uri(folder)).write_bytes(b"the same manifest")
    (root / "progress").mkdir(exist_ok=True)
    for name, record in records.items():
        Path(join(folder, "progress", name + ".json")).write_text(json.dumps(record))
    return folder


def test_shards_fingerprint_follows_the_shards_content(tmp_path) -> None:
    storage = Storage()
    record = {"fingerprint": "cfg", "shard": "train-000000.tar", "sha256": "aaaa", "manifest": []}
    base = shards_fingerprint(write_folder(tmp_path / "a", {"train-000000.tar": record}), storage)
    again = shards_fingerprint(write_folder(tmp_path / "b", {"train-000000.tar": record}), storage)
    assert again == base  # content, not place
    # Same clip names, same preprocessing config, other pixels (e.g. a re-rendered corpus): another key.
    rerendered = write_folder(tmp_path / "c", {"train-000000.tar": {**record, "sha256": "bbbb"}})
    assert shards_fingerprint(rerendered, storage) != base
    reconfigured = write_folder(tmp_path / "d", {"train-000000.tar": {**record, "fingerprint": "other"}})
    assert shards_fingerprint(reconfigured, storage) != base
