"""``thpad generate-batch JOBS OUT``: many videos on Ray Data, one bundle load per actor.

JOBS is a CSV, JSONL or parquet table with a row per video: ``image`` and ``audio`` (local paths or ``s3://`` URIs)
and optionally ``id``, ``seed``, ``guidance``, ``samples``, ``keyframes`` ("40=a.jpg;80=b.jpg"), ``nonlip_from``.
Each row ends in ``OUT/results.parquet`` with its output URIs or the reason it failed; a bad row never stops the
job. A rerun skips the rows whose video is already there (the result table is rewritten whole each time). Locally it
runs on the embedded default's Ray; with ``RAY_ADDRESS`` on a cluster, unchanged.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv
import pyarrow.json
import pyarrow.parquet as pq

from thpad.pipelines.ray_env import RayConfig, ensure_ray
from thpad.storage.uri import S3Config, Storage, is_s3, join

log = logging.getLogger(__name__)
RESULTS = "results.parquet"
OPTIONAL = ("seed", "guidance", "samples", "keyframes", "nonlip_from")
RESULT_SCHEMA = pa.schema([("id", pa.string()), ("image", pa.string()), ("audio", pa.string()),
                           ("status", pa.string()), ("video", pa.string()), ("sidecar", pa.string()),
                           ("frames", pa.int64()), ("seconds", pa.float64()), ("reason", pa.string())])


def read_jobs(path: str) -> list[dict[str, Any]]:
    """The job rows of a CSV, JSONL or parquet file, each with an ``id`` (given, else ``row-NNNNNN``).

    Raises:
        ValueError: an unknown format, a missing ``image`` or ``audio`` column, or duplicate ids.
    """
    suffix = Path(path).suffix.lower()
    readers = {".csv": pyarrow.csv.read_csv, ".jsonl": pyarrow.json.read_json, ".json": pyarrow.json.read_json,
               ".parquet": pq.read_table}
    if suffix not in readers:
        raise ValueError(f"{path}: jobs must be a .csv, .jsonl or .parquet table")
    if not Path(path).is_file():
        raise ValueError(f"{path}: no such jobs file")
    rows = readers[suffix](path).to_pylist()
    for i, row in enumerate(rows):
        if not row.get("image") or not row.get("audio"):
            raise ValueError(f"{path}: row {i} has no image or audio (columns image, audio are required)")
        row["id"] = str(row.get("id") or f"row-{i:06d}")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate ids in the id column")
    return rows


def options_of(row: dict[str, Any]) -> dict[str, Any]:
    """The generation options a job row sets (empty cells are unset)."""
    out: dict[str, Any] = {}
    for name in OPTIONAL:
        value = row.get(name)
        if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
            continue
        if name == "keyframes":
            value = {int(f): p for f, _, p in (item.partition("=") for item in str(value).split(";") if item)}
        elif name in ("seed", "samples"):
            value = int(value)
        elif name == "guidance":
            value = float(value)
        out[name] = value
    return out


class BatchGenerator:
    """A Ray Data actor: loads the bundle once, then turns job rows into videos (never raises for a bad row)."""

    def __init__(self, bundle: str, out: str, s3: S3Config) -> None:
        from thpad.pipelines.generate.model import TalkingHeadModel

        self.model = TalkingHeadModel(bundle)
        self.out, self.storage = out, Storage(s3)

    def _fetch(self, uri: str) -> Any:
        return self.storage.read_bytes(uri) if is_s3(uri) else uri

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        base = {"id": row["id"], "image": row["image"], "audio": row["audio"], "video": "", "sidecar": "",
                "frames": 0, "reason": ""}
        try:
            options = options_of(row)
            if options.get("nonlip_from") and is_s3(options["nonlip_from"]):
                raise ValueError("nonlip_from must be a local video file")
            keyframes = {f: self._fetch(p) for f, p in options.get("keyframes", {}).items()}
            result = self.model.generate(self._fetch(row["image"]), self._fetch(row["audio"]),
                                         **{**options, **({"keyframes": keyframes} if keyframes else {})})
            video, sidecar = self._save(result, row["id"])
            return {**base, "status": "ok", "video": video, "sidecar": sidecar, "frames": result.num_frames,
                    "seconds": round(time.perf_counter() - start, 3)}
        except Exception as err:  # recorded, never fatal: the job goes on with the other rows
            log.warning("job %s failed: %s", row["id"], err)
            return {**base, "status": "failed", "seconds": round(time.perf_counter() - start, 3),
                    "reason": f"{type(err).__name__}: {err}"}

    def _save(self, result: Any, job_id: str) -> tuple[str, str]:
        if not is_s3(self.out):
            written = result.save(Path(self.out) / f"{job_id}.mp4")
            return str(written["video"]), str(written["sidecar"])
        with tempfile.TemporaryDirectory(prefix="thpad-batch-") as tmp:
            written = result.save(Path(tmp) / f"{job_id}.mp4")
            uris = []
            for key in ("video", "sidecar"):
                uri = join(self.out, Path(written[key]).name)
                self.storage.upload_file_atomic(written[key], uri)
                uris.append(uri)
            return uris[0], uris[1]


def done_ids(out: str, storage: Storage) -> dict[str, dict[str, Any]]:
    """The rows of an earlier run's results whose video still exists."""
    uri = join(out, RESULTS)
    if not storage.exists(uri):
        return {}
    table = pq.read_table(pa.BufferReader(storage.read_bytes(uri)))
    return {r["id"]: r for r in table.to_pylist() if r["status"] == "ok" and storage.exists(r["video"])}


def run_batch(jobs: str, out: str, bundle: str, ray: RayConfig, s3: S3Config, workers: int) -> dict[str, int]:
    """Generate every job row not done yet on a pool of ``workers`` actors; write ``OUT/results.parquet``."""
    storage = Storage(s3)
    rows = read_jobs(jobs)
    if not is_s3(out):
        Path(out).mkdir(parents=True, exist_ok=True)
    done = done_ids(out, storage)
    todo = [r for r in rows if r["id"] not in done]
    log.info("generate-batch: %d jobs, %d done earlier, %d to run on %d actor(s)", len(rows), len(done), len(todo),
             workers)
    results = list(done.values())
    if todo:
        ensure_ray(ray)
        import ray as ray_module

        items = ray_module.data.from_items([{k: (None if v is None else str(v)) for k, v in r.items()} for r in todo],
                                           override_num_blocks=len(todo))
        pool = items.map(BatchGenerator, fn_constructor_args=(bundle, out, s3), concurrency=max(1, min(workers,
                         len(todo))), num_cpus=1)
        for row in pool.iter_rows():
            results.append(row)
            log.info("[%d/%d] %s: %s", len(results) - len(done), len(todo), row["id"], row["status"]
                     if row["status"] == "ok" else row["reason"])
    order = {r["id"]: i for i, r in enumerate(rows)}
    results = sorted((r for r in results if r["id"] in order), key=lambda r: order[r["id"]])
    table = pa.Table.from_pylist([{f.name: r.get(f.name) for f in RESULT_SCHEMA} for r in results],
                                 schema=RESULT_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    storage.write_bytes_atomic(join(out, RESULTS), sink.getvalue().to_pybytes())
    failed = sum(r["status"] != "ok" for r in results)
    return {"jobs": len(rows), "skipped": len(done), "ok": len(results) - failed, "failed": failed}
