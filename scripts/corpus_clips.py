"""The clips of one split of a preprocess out folder, with their sample-corpus truth: the input of the oracles
in ``scripts/`` (``sync_ceiling.py``, ``motion_worth.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from thpad.storage.manifest import list_shards
from thpad.storage.readers import iter_raw
from thpad.storage.shards import decode_meta
from thpad.storage.uri import Storage


def truth_clips(shards: str, split: str, storage: Storage) -> Iterator[tuple[dict[str, Any], dict[str, bytes]]]:
    """(meta.json as a dict, raw members) of every clip of ``split``; a clear error when the split has no shards
    or a clip has no corpus truth (the oracles need the sample corpus)."""
    found = list_shards(shards, split, storage)
    if not found:
        raise ValueError(f"no {split} shards in {shards}/shards: run `make run` (or `thpad preprocess`) first, "
                         "or pass --shards")
    for key, members in iter_raw(found, storage):
        meta = decode_meta(key, members)
        if not meta.get("truth"):
            raise ValueError(f"{key}: no corpus truth in its meta.json (the oracle needs the sample corpus)")
        yield meta, members
