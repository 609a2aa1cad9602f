"""The preprocessing program on Ray Data: discover → plan splits and shards → one Ray task per shard
(an actor pool, so dlib loads once per worker) → manifest.parquet and rejects.parquet.

Resumable: each finished shard leaves a small record (``OUT/progress/{shard}.json``, written after
the shard) holding its manifest rows, its rejects, the config fingerprint and a ``sources`` hash of the
shard's plan (its clips' keys and URIs) and of every source file's ``Storage.version`` (size and mtime,
or S3 ETag and size). A rerun skips shards whose record matches both, so a killed run picks up where it
stopped and gives the same bytes, while a shard whose config, clip list or source files changed (a clip
replaced under the same name, say) is rewritten, with an INFO line saying why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator

import cv2

from thpad.codec import to_dict
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.track import Landmarker, load_landmarker
from thpad.pipelines.preprocess.clip import process_clip
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.preprocess.plan import ShardPlan, assign_splits, empty_splits, plan_shards
from thpad.pipelines.ray_env import ensure_ray
from thpad.storage.files import remove_partials
from thpad.storage.fingerprint import bytes_fingerprint
from thpad.storage.manifest import manifest_row, manifest_uri, rejects_uri, shard_uri, write_manifest, write_rejects
from thpad.storage.progress import read_record, record_uri, write_record
from thpad.storage.shards import ClipSample, write_shard
from thpad.storage.uri import Storage, StorageError, is_s3
from thpad.storage.voxceleb import SourceClip, discover

log = logging.getLogger(__name__)
MISSING = "missing"  # the version of a local source that cannot be stat'ed


def fingerprint(cfg: PreprocessConfig) -> str:
    """A hash of everything that changes the bytes of a shard (not workers, Ray or S3 settings)."""
    relevant = {k: v for k, v in to_dict(cfg).items() if k not in ("workers", "ray", "s3", "out")}
    return bytes_fingerprint(json.dumps(relevant, sort_keys=True).encode())


def source_uris(clip: SourceClip) -> list[str]:
    """The files a clip is read from: its video, and its audio and truth when it has them."""
    return [uri for uri in (clip.video_uri, clip.audio_uri, clip.truth_uri) if uri is not None]


def _version(uri: str, storage: Storage) -> str:
    """``Storage.version``, but a local file that cannot be stat'ed is ``MISSING``, so its shard is rewritten
    and the clip refused by the normal path, as before. S3 errors propagate: reading would fail likewise."""
    try:
        return storage.version(uri)
    except StorageError:
        if is_s3(uri):
            raise
        return MISSING


def sources_digest(plan: ShardPlan, storage: Storage) -> str:
    """A hash of a shard's plan (split, index, clips with keys and URIs) and the current version of every
    source file of its clips: it changes when a clip is added, removed or replaced under the same name.

    Taken before the shard is written, so a file changed mid-write leaves a record that no longer matches.
    """
    versions = {uri: _version(uri, storage) for clip in plan.clips for uri in source_uris(clip)}
    text = json.dumps({"plan": plan_to_json(plan), "versions": versions}, sort_keys=True)
    return bytes_fingerprint(text.encode())


def stale_reason(record: dict, print_: str, sources: str) -> str | None:
    """Why a progress record no longer describes the shard to write, or None when the shard can be resumed."""
    reasons = []
    if record.get("fingerprint") != print_:
        reasons.append("the preprocess config changed")
    if "sources" not in record:
        reasons.append("its record predates source tracking")
    elif record["sources"] != sources:
        reasons.append("its clip list or source files changed")
    return " and ".join(reasons) or None


def _reject(source: str, key: str | None, stage: str, reason: str) -> dict:
    return {"source": source, "key": key, "stage": stage, "reason": reason}


def _samples(plan: ShardPlan, cfg: PreprocessConfig, storage: Storage, landmarker: Landmarker,
             rows: list[dict], rejects: list[dict]) -> Iterator[ClipSample]:
    """Process a shard's clips one by one, recording manifest rows and rejects as they go."""
    for clip in plan.clips:
        try:
            sample = process_clip(clip, cfg, storage, landmarker)
        except RejectClip as err:
            rejects.append(_reject(clip.video_uri, clip.key, "preprocess", str(err)))
            continue
        except StorageError:
            raise  # infrastructure, not input: fail the run naming the URI; a rerun resumes
        except Exception as err:  # an unforeseen failure on one input must not end the run
            log.exception("unexpected failure on %s", clip.video_uri)
            rejects.append(_reject(clip.video_uri, clip.key, "preprocess", f"unexpected {type(err).__name__}: {err}"))
            continue
        sample = dataclasses.replace(sample, meta={**sample.meta, "split": plan.split})
        rows.append(manifest_row(sample, plan.name))
        yield sample


def process_shard(plan: ShardPlan, cfg: PreprocessConfig, storage: Storage, landmarker: Landmarker,
                  print_: str) -> dict:
    """Write one shard (unless its progress record matches the config and sources) and return the record."""
    uri = record_uri(cfg.out, plan.name)
    sources = sources_digest(plan, storage)
    record = read_record(uri, storage)
    if record is not None:
        stale = stale_reason(record, print_, sources)
        if stale is None:
            return {**record, "resumed": True}
        log.info("rewriting shard %s: %s", plan.name, stale)
    rows: list[dict] = []
    rejects: list[dict] = []
    written = write_shard(_samples(plan, cfg, storage, landmarker, rows, rejects),
                          shard_uri(cfg.out, plan.split, plan.index), storage, cfg.jpeg_quality)
    record = {"fingerprint": print_, "sources": sources, "shard": plan.name, "sha256": written.sha256,
              "manifest": rows, "rejects": rejects}
    write_record(uri, record, storage)
    return {**record, "resumed": False}


class ShardWorker:
    """A Ray Data actor: loads the landmark model once, then writes the shards it is given.

    Each output row carries, besides the shard's record, the seconds the shard took and (on the actor's first
    row) the seconds its start took: the run's summary reports them, no file keeps them.
    """

    def __init__(self, cfg: PreprocessConfig, storage: Storage, print_: str) -> None:
        start = time.perf_counter()
        cv2.setNumThreads(1)  # the worker has one core (num_cpus=1): OpenCV's own threads would fight the others
        self.cfg, self.storage, self.print_ = cfg, storage, print_
        self.landmarker = load_landmarker(cfg.track)
        self.start_seconds = time.perf_counter() - start

    def __call__(self, row: dict) -> dict:
        start = time.perf_counter()
        record = process_shard(plan_from_json(row["plan"]), self.cfg, self.storage, self.landmarker, self.print_)
        out = {"shard": row["shard"], "record": json.dumps(record), "seconds": time.perf_counter() - start,
               "start_seconds": self.start_seconds}
        self.start_seconds = 0.0  # counted once per worker
        return out


def plan_to_json(plan: ShardPlan) -> str:
    """A shard plan as JSON: it travels inside the Ray Data row, so no actor holds the whole plan."""
    return json.dumps({"split": plan.split, "index": plan.index, "clips": [dataclasses.asdict(c) for c in plan.clips]})


def plan_from_json(text: str) -> ShardPlan:
    """The inverse of ``plan_to_json``."""
    data = json.loads(text)
    return ShardPlan(data["split"], data["index"], tuple(SourceClip(**c) for c in data["clips"]))


def run_preprocess(cfg: PreprocessConfig, storage: Storage) -> dict:
    """Preprocess ``cfg.source`` into ``cfg.out``; returns the summary (counts per split, reasons)."""
    if not is_s3(cfg.out) and remove_partials(cfg.out):
        log.info("removed partial files left in %s by a killed run", cfg.out)
    found = discover(cfg.source, storage)
    if not found.clips:
        raise ValueError(f"no .mp4 clips found below {cfg.source} (expected {{dev,test}}/mp4/idX/VIDEO/N.mp4)")
    splits = assign_splits(found.clips, cfg.split)
    unplanned = empty_splits(found.clips, splits, cfg.split)
    for split, why in unplanned.items():
        log.warning("split %r is empty and gets no shards (%s); the stages that need it will refuse", split, why)
    plans = plan_shards(found.clips, splits, cfg.split)
    log.info("preprocess: %d clips (+%d refused by layout) in %d shards, %d workers",
             len(found.clips), len(found.rejects), len(plans), cfg.workers)
    ensure_ray(cfg.ray)
    import ray

    # A StorageError in an actor reaches the caller as a StorageError (naming the URI), not as Ray Data's
    # generic UserCodeException, so the command can print it and exit cleanly.
    ray.data.DataContext.get_current().raise_original_map_exception = True
    tasks = [{"shard": i, "plan": plan_to_json(p)} for i, p in enumerate(plans)]
    items = ray.data.from_items(tasks, override_num_blocks=len(plans))
    results = items.map(ShardWorker, fn_constructor_args=(cfg, storage, fingerprint(cfg)),
                        concurrency=max(1, min(cfg.workers, len(plans))), num_cpus=1).take_all()
    results = sorted(results, key=lambda r: r["shard"])
    records = [json.loads(r["record"]) for r in results]
    rows = [row for rec in records for row in rec["manifest"]]
    rejects = [_reject(s, None, "discover", reason) for s, reason in found.rejects]
    rejects += [rej for rec in records for rej in rec["rejects"]]
    write_manifest(rows, manifest_uri(cfg.out), storage)
    write_rejects(rejects, rejects_uri(cfg.out), storage)
    summary = summarize(rows, rejects, records, len(found.clips) + len(found.rejects))
    refused = {p.split for p in plans} - set(summary["per_split"])
    for split in sorted(refused):
        log.warning("split %r was planned but every clip in it was refused", split)
    summary["empty_splits"] = {**unplanned, **{s: "every clip in it was refused" for s in refused}}
    summary["timing"] = timing(results, records)
    return summary


def timing(results: list[dict], records: list[dict]) -> dict:
    """Where the workers' time went: seconds in shards written now (and their frames, so the per-frame cost of
    one worker is ``shard_seconds / frames``), and seconds the workers spent starting (model loading)."""
    written = [(res, rec) for res, rec in zip(results, records, strict=True) if not rec.get("resumed")]
    frames = sum(row["num_frames"] for _, rec in written for row in rec["manifest"])
    seconds = sum(res["seconds"] for res, _ in written)
    return {"shard_seconds": round(seconds, 3), "frames": frames,
            "ms_per_frame_per_worker": round(1e3 * seconds / frames, 3) if frames else None,
            "worker_start_seconds": round(sum(res["start_seconds"] for res in results), 3)}


def summarize(rows: list[dict], rejects: list[dict], records: list[dict], discovered: int) -> dict:
    """Counts per split, reasons of refusal, and how many shards were resumed."""
    return {
        "discovered": discovered,
        "accepted": len(rows),
        "rejected": len(rejects),
        "per_split": dict(Counter(r["split"] for r in rows)),
        "reasons": dict(Counter(r["reason"].split(":")[0] for r in rejects).most_common()),
        "rejects": [(r["source"], r["reason"]) for r in rejects],
        "shards": len(records),
        "shards_resumed": sum(bool(r.get("resumed")) for r in records),
    }
