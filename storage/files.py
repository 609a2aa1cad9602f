"""Atomic local file writes: write to a temporary sibling, then rename, so no reader ever sees a
half-written file under its final name and a killed run leaves only ``.partial`` debris."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def temp_sibling(path: Path) -> Path:
    """The temporary name used beside ``path`` while it is written (``remove_partials`` finds it)."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> Path:
    """Call ``write`` on a temporary sibling of ``path``, then rename it into place (``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        with open(tmp, "wb") as stream:
            write(stream)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda stream: stream.write(data))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically."""
    return atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def remove_partials(root: str | Path) -> int:
    """Delete ``.partial`` debris left below ``root`` by a killed run; returns how many were removed."""
    count = 0
    for debris in Path(root).rglob(".*.partial*"):
        debris.unlink(missing_ok=True)
        count += 1
    return count
