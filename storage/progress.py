"""Progress records: the small JSON file a resumable job writes after each finished unit of work (a shard), under
``OUT/progress/``. Preprocessing and feature extraction both resume from them: a rerun skips a unit whose record
still matches its inputs. Written atomically, after the unit's own output, so a record never names half a job.
"""

from __future__ import annotations

import json
from typing import Any

from thpad.storage.uri import Storage, join

PROGRESS_DIR = "progress"


def record_uri(out: str, *parts: str) -> str:
    """``OUT/progress/<parts...>.json``, e.g. ``record_uri(out, "train", "train-000000")``."""
    return join(out, PROGRESS_DIR, *parts[:-1], parts[-1] + ".json")


def record_uris(out: str, storage: Storage) -> list[str]:
    """Every record under ``OUT/progress/``, sorted."""
    return sorted(storage.list_files(join(out, PROGRESS_DIR), ".json"))


def read_record(uri: str, storage: Storage) -> dict[str, Any] | None:
    """The record at ``uri``, or None when there is none."""
    return json.loads(storage.read_bytes(uri)) if storage.exists(uri) else None


def write_record(uri: str, record: dict[str, Any], storage: Storage) -> None:
    """Write ``record`` atomically, keys sorted (the same record gives the same bytes)."""
    storage.write_bytes_atomic(uri, json.dumps(record, sort_keys=True).encode())
