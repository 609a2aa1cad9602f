"""Stage ``extract_features``: the stage-2 encoders run over every preprocessed clip on Ray Data, giving the
per-frame sequences the priors learn from (docs/paper-notes.md §1.5, L_a2nl: the prior regresses the visual non-lip
features f^v_nl from the audio features). For frame t of a clip::

    f_nl[t] = MLP_nl(MLP_ol(E_v(frame t)))    (T, 42)
    f_a[t]  = E_a(mel window of t)            (T, audio_dim): 0.2 s centred on t, zero-filled at the clip ends

The paper does not say how the features are taken; we use the EMA weights of the stage-2 snapshot in eval mode
(BatchNorm running statistics, no dropout), with frames resized and windows cut exactly as the training reader
does (storage/readers.py), so a frame's features do not depend on the batch it is computed in.

One Ray Data row is one shard: a pool of actors, each loading the encoders once, writes one feature file per
shard (storage/features.py). Resumable: after a shard's feature file, a record ``OUT/progress/{split}/{stem}.json``
stores its fingerprint (format version, snapshot hash, shard content hash); a rerun skips a shard whose feature
file exists and whose record matches, and recomputes the rest. Checking a shard means reading it without
decoding anything (a small cost next to extraction). The snapshot is read once, by the driver: its hash is taken
over the very bytes whose weights the actors get. ``info.json`` is deleted first and written last: it marks a
complete folder. A shard that fails does not stop the others; the run then raises an error naming it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from thpad.codec import from_dict, to_dict
from thpad.models.feature_encoders import FeatureEncoders, build_encoders
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHeadConfig, build_talking_head
from thpad.pipelines.features.config import FeaturesConfig
from thpad.pipelines.ray_env import ensure_ray
from thpad.storage.checkpoint import SnapshotError, load_snapshot
from thpad.storage.features import ClipFeatures, feature_file_uri, info_uri, write_feature_file, write_info
from thpad.storage.files import remove_partials
from thpad.storage.fingerprint import HashingStream, bytes_fingerprint, stream_fingerprint
from thpad.storage.manifest import list_shards, manifest_uri, read_manifest
from thpad.storage.progress import read_record, record_uri, record_uris, write_record
from thpad.storage.readers import iter_tar_samples, to_tensor
from thpad.storage.shards import MEL, decode_frames, decode_meta, load_npy
from thpad.storage.uri import Storage, StorageError, basename, is_s3
from thpad.storage.windows import mel_window

log = logging.getLogger(__name__)
FORMAT_VERSION = 1  # bump when the features of a frame change meaning (window, resize, ...): invalidates records
TRUTH_FIELDS = ("motion", "events")  # the sample corpus's truth kept with the features (not its landmarks)


def encoder_state(snapshot: bytes, uri: str) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The TalkingHead config and the encoders' weights of a ``train_disentangle`` snapshot.

    Raises:
        ValueError: the bytes are not a TalkingHead snapshot (names ``uri`` and the fix).
    """
    try:
        model = load_snapshot(snapshot, build_talking_head)
    except SnapshotError as err:
        raise ValueError(f"{uri}: not a TalkingHead snapshot ({err}); rerun train_disentangle or point "
                         "paths.disentangle at its output") from err
    keep = ("visual_encoder.", "audio_encoder.")
    state = {k: v for k, v in model.state_dict().items() if k.startswith(keep)}
    return to_dict(model.cfg), state


def preset_name(config: Mapping[str, Any]) -> str:
    """The ``TALKING_HEAD_PRESETS`` name of a TalkingHead config ("tiny, warp renderer" when only the renderer
    differs from the preset's), or "custom"."""
    cfg = from_dict(TalkingHeadConfig, config)
    for name, preset in TALKING_HEAD_PRESETS.items():
        if dataclasses.replace(preset, renderer=cfg.renderer) == cfg:
            return name if preset.renderer == cfg.renderer else f"{name}, {cfg.renderer} renderer"
    return "custom"


def clip_features(key: str, members: Mapping[str, bytes], encoders: FeatureEncoders,
                  batch_frames: int) -> ClipFeatures:
    """Every frame's f_nl and f_a for one clip, ``batch_frames`` frames at a time.

    Args:
        key, members: one shard sample as ``iter_tar_samples`` yields it (raw member bytes).
        encoders: the eval-mode encoders; frames are resized to their image size as in training.
        batch_frames: frames per forward pass (memory bound only).
    Returns:
        ClipFeatures with f_nl (T, nl_dim), f_a (T, audio_dim) and the truth's motion and events (or None).
    """
    meta = decode_meta(key, dict(members))
    mel = load_npy(members[MEL])  # (n_mels, bins_per_frame * T)
    num_frames = int(meta["num_frames"])
    bins_per_frame = mel.shape[1] // num_frames  # 4 at 16 kHz, hop 160, 25 fps
    frames_per_window, rest = divmod(encoders.mel_frames, bins_per_frame)  # 5, as the training reader
    if rest:
        raise ValueError(f"clip {key!r}: E_a reads {encoders.mel_frames} mel bins, not a whole number of video "
                         f"frames of {bins_per_frame} bins")
    device, f_nl, f_a = next(encoders.parameters()).device, [], []
    for start in range(0, num_frames, batch_frames):
        frame_ids = list(range(start, min(start + batch_frames, num_frames)))
        frames = to_tensor(decode_frames(members, frame_ids, encoders.image_size)).to(device)  # (n, 3, S, S)
        windows = np.stack([mel_window(mel, t, frames_per_window, bins_per_frame)[0]
                            for t in frame_ids])  # (n, n_mels, W)
        nl, audio = encoders(frames, torch.from_numpy(windows)[:, None].to(device))  # (n, nl_dim), (n, audio_dim)
        f_nl.append(nl.float().cpu().numpy())
        f_a.append(audio.float().cpu().numpy())
    truth = meta.get("truth")
    truth = {k: truth[k] for k in TRUTH_FIELDS if k in truth} if truth is not None else None
    return ClipFeatures(key, meta["identity"], meta["split"], np.concatenate(f_nl), np.concatenate(f_a), truth)






def extract_shard(uri: str, split: str, encoders: FeatureEncoders, batch_frames: int, out: str,
                  storage: Storage) -> tuple[int, int, str]:
    """Read a shard once (hashing it as it streams), write its feature file; returns (clips, frames, hash)."""
    clips: list[ClipFeatures] = []
    with storage.open_read(uri) as raw:
        stream = HashingStream(raw)
        for key, members in iter_tar_samples(stream):
            clips.append(clip_features(key, members, encoders, batch_frames))
        digest = stream.finish()
    write_feature_file(clips, feature_file_uri(out, split, uri), storage)
    return len(clips), sum(c.num_frames for c in clips), digest


def progress_uri(out: str, split: str, shard: str) -> str:
    """``OUT/progress/{split}/{stem}.json``: the record of a finished shard."""
    return record_uri(out, split, basename(shard).removesuffix(".tar"))


def fingerprint(snapshot_hash: str, shard_digest: str) -> str:
    """What a shard's features depend on: the format version, the snapshot and the shard content."""
    return f"v{FORMAT_VERSION}-{snapshot_hash}-{shard_digest}"


def finished_record(uri: str, split: str, out: str, snapshot_hash: str, storage: Storage) -> dict | None:
    """The shard's record when its feature file exists and the record matches the current inputs, else None."""
    record = read_record(progress_uri(out, split, uri), storage)
    if record is None or not storage.exists(feature_file_uri(out, split, uri)):
        return None
    return record if record.get("fingerprint") == fingerprint(snapshot_hash, stream_fingerprint(uri, storage)) else None


def process_shard(uri: str, split: str, encoders: FeatureEncoders, cfg: FeaturesConfig, snapshot_hash: str,
                  storage: Storage) -> dict:
    """Extract one shard unless its record says it is done; returns the record (with ``resumed``)."""
    record = finished_record(uri, split, cfg.out, snapshot_hash, storage)
    if record is not None:
        return {**record, "seconds": 0.0, "resumed": True}
    start = time.perf_counter()
    clips, frames, digest = extract_shard(uri, split, encoders, cfg.batch_frames, cfg.out, storage)
    # Only what the inputs determine (no time, no absolute path): the same inputs give the same folder bytes.
    record = {"fingerprint": fingerprint(snapshot_hash, digest), "shard": basename(uri), "split": split,
              "clips": clips, "frames": frames}
    write_record(progress_uri(cfg.out, split, uri), record, storage)
    return {**record, "seconds": round(time.perf_counter() - start, 3), "resumed": False}


class ShardExtractor:
    """A Ray Data actor: builds the encoders once, then extracts the shards it is given.

    A failure is returned, not raised: Ray would wrap it beyond recognition and stop the other shards; the
    driver raises it naming the shard once the rest are done (and resumable).
    """

    def __init__(self, cfg: FeaturesConfig, storage: Storage, config: dict[str, Any],
                 state: dict[str, torch.Tensor], snapshot_hash: str) -> None:
        torch.set_num_threads(max(1, round(cfg.cpus_per_worker)))
        self.cfg, self.storage, self.snapshot_hash = cfg, storage, snapshot_hash
        device = "cuda" if cfg.gpus_per_worker > 0 and torch.cuda.is_available() else "cpu"
        self.encoders = build_encoders(config, state).to(device)

    def __call__(self, row: dict) -> dict:
        try:
            record = process_shard(row["shard"], row["split"], self.encoders, self.cfg, self.snapshot_hash,
                                   self.storage)
            return {"shard": row["shard"], "record": json.dumps(record), "error": "", "storage_error": False}
        except Exception as err:  # reported by the driver, naming the shard
            log.exception("extract_features: shard %s failed", row["shard"])
            return {"shard": row["shard"], "record": "", "error": f"{type(err).__name__}: {err}",
                    "storage_error": isinstance(err, StorageError)}


def shard_tasks(cfg: FeaturesConfig, storage: Storage) -> tuple[list[dict], Counter]:
    """One task per shard of every split in the manifest, and the manifest's clip count per shard file name."""
    if not storage.exists(manifest_uri(cfg.shards)):
        raise ValueError(f"no preprocessed data at {cfg.shards} (no manifest.parquet); run `dvc repro preprocess` "
                         "or fix paths.preprocessed")
    manifest = read_manifest(manifest_uri(cfg.shards), storage)
    splits = sorted(set(manifest.column("split").to_pylist()))
    tasks = [{"shard": uri, "split": split} for split in splits for uri in list_shards(cfg.shards, split, storage)]
    if not tasks:
        raise ValueError(f"{cfg.shards}/shards holds no shard of the manifest's splits {splits}")
    return tasks, Counter(manifest.column("shard").to_pylist())


def read_encoders(cfg: FeaturesConfig, storage: Storage) -> tuple[dict[str, Any], dict[str, torch.Tensor], str]:
    """The snapshot's TalkingHead config, encoder weights and content hash (16 hex digits, as
    ``harness.file_fingerprint``), from one read of the file."""
    if not storage.exists(cfg.disentangle):
        raise ValueError(f"no TalkingHead snapshot at {cfg.disentangle}; run `dvc repro train_disentangle` or fix "
                         "paths.disentangle")
    data = storage.read_bytes(cfg.disentangle)
    config, state = encoder_state(data, cfg.disentangle)
    return config, state, bytes_fingerprint(data)


def remove_stale(out: str, tasks: list[dict], storage: Storage) -> int:
    """Delete the feature files (and records) of shards that are no longer inputs; returns how many went.

    Only files with a record of ours are touched, so an ``out`` pointed at the wrong folder loses nothing else.
    """
    keep = {progress_uri(out, t["split"], t["shard"]) for t in tasks}
    stale = [u for u in record_uris(out, storage) if u not in keep]
    for uri in stale:
        split, name = uri.rsplit("/", 2)[-2:]
        storage.delete(feature_file_uri(out, split, name.removesuffix(".json") + ".tar"))
        storage.delete(uri)
    return len(stale)


def run_shards(tasks: list[dict], cfg: FeaturesConfig, storage: Storage,
               encoders: tuple[dict[str, Any], dict[str, torch.Tensor], str]) -> list[dict]:
    """Extract the shards on a Ray Data actor pool (``encoders``: config, weights, snapshot hash); returns the
    actors' rows as they finish, logged one by one."""
    ensure_ray(cfg.ray)
    import ray

    items = ray.data.from_items(tasks, override_num_blocks=len(tasks))
    pool = items.map(ShardExtractor, fn_constructor_args=(cfg, storage, *encoders),
                     concurrency=max(1, min(cfg.workers, len(tasks))), num_cpus=cfg.cpus_per_worker,
                     num_gpus=cfg.gpus_per_worker)
    results = []
    for row in pool.iter_rows():
        results.append(row)
        if row["error"]:
            log.error("[%d/%d] %s failed: %s", len(results), len(tasks), row["shard"], row["error"])
            continue
        rec = json.loads(row["record"])
        how = "resumed" if rec["resumed"] else f"{rec['seconds']:.1f} s, {rec['frames'] / rec['seconds']:.0f} frames/s"
        log.info("[%d/%d] %s: %d clips, %d frames (%s)", len(results), len(tasks), basename(row["shard"]),
                 rec["clips"], rec["frames"], how)
    return results


def raise_failures(results: list[dict]) -> None:
    """Raise the first failed shard's error (StorageError for I/O, else ValueError), naming the shard."""
    failed = sorted((r for r in results if r["error"]), key=lambda r: r["shard"])
    if not failed:
        return
    first, more = failed[0], f" (and {len(failed) - 1} more shards, see the log)" if len(failed) > 1 else ""
    if first["storage_error"]:
        raise StorageError("extract features from", first["shard"], first["error"] + more)
    raise ValueError(f"shard {first['shard']}: {first['error']}{more}; the other shards are kept, fix this one "
                     "(e.g. rerun preprocess) and rerun to resume")


def check_counts(records: list[dict], per_shard: Counter, shards: str) -> None:
    """Every clip of the manifest was extracted once: clip counts per shard agree with the manifest."""
    for rec in records:
        expected = per_shard.get(rec["shard"], 0)
        if rec["clips"] != expected:
            raise ValueError(f"shard {rec['shard']} of {shards}: {rec['clips']} clips extracted, the manifest lists "
                             f"{expected}; the shards folder is inconsistent, rerun preprocess")


def run_extract(cfg: FeaturesConfig, storage: Storage) -> dict:
    """Extract f_nl and f_a for every clip of ``cfg.shards`` into ``cfg.out``.

    Returns:
        The summary: info.json's content plus ``shards_resumed``, ``seconds`` and ``frames_per_s`` (the
        extraction speed of one worker over the shards computed in this run, None if all were resumed).
    """
    tasks, per_shard = shard_tasks(cfg, storage)
    config, state, snapshot_hash = read_encoders(cfg, storage)
    if not is_s3(cfg.out) and remove_partials(cfg.out):
        log.info("removed partial files left in %s by a killed run", cfg.out)
    storage.delete(info_uri(cfg.out))
    if remove_stale(cfg.out, tasks, storage):
        log.info("removed the feature files of shards no longer in %s", cfg.shards)
    log.info("extract_features: %d shards, %d workers, snapshot %s (%s)", len(tasks), cfg.workers, snapshot_hash,
             preset_name(config))
    start = time.perf_counter()
    results = run_shards(tasks, cfg, storage, (config, state, snapshot_hash))
    raise_failures(results)
    records = sorted((json.loads(r["record"]) for r in results), key=lambda r: r["shard"])
    check_counts(records, per_shard, cfg.shards)
    info = feature_info(records, config, snapshot_hash)
    write_info(cfg.out, info, storage)
    fresh = [r for r in records if not r["resumed"]]
    busy = sum(r["seconds"] for r in fresh)
    return {**info, "shards_resumed": len(records) - len(fresh), "seconds": round(time.perf_counter() - start, 1),
            "frames_per_s": round(sum(r["frames"] for r in fresh) / busy, 1) if busy else None}


def feature_info(records: list[dict], config: Mapping[str, Any], snapshot_hash: str) -> dict:
    """The content of info.json: widths, snapshot hash, encoder preset, counts per split. Nothing that varies
    between runs (times, resumed shards), so the same inputs give the same folder."""
    cfg = from_dict(TalkingHeadConfig, config)
    return {
        "format_version": FORMAT_VERSION, "nl_dim": cfg.nl_dim, "audio_dim": cfg.audio.out_dim,
        "snapshot": snapshot_hash, "model": preset_name(config),
        "clips": _per_split(records, "clips"), "frames": _per_split(records, "frames"),
        "shards": _per_split(records, None),
    }


def _per_split(records: list[dict], field: str | None) -> dict[str, int]:
    """Sum of ``field`` (None: count of records) per split."""
    counts: Counter = Counter()
    for rec in records:
        counts[rec["split"]] += 1 if field is None else rec[field]
    return dict(sorted(counts.items()))


def record_run(cfg: FeaturesConfig, summary: Mapping[str, Any]) -> str:
    """Record an extraction as the MLflow run of stage ``extract_features`` (under the pipeline's parent run):
    the resolved params, the counts and speed as metrics, ``info.json`` as an artifact. Returns the run id."""
    from thpad.storage.tracking import open_stage_run

    run = open_stage_run(cfg.tracking, "extract_features", params=to_dict(cfg),
                         tags={"thpad.input.disentangle": str(summary["snapshot"])})
    metrics = {f"clips/{split}": n for split, n in summary["clips"].items()}
    metrics.update({f"frames/{split}": n for split, n in summary["frames"].items()})
    metrics.update({"seconds": summary["seconds"], "shards_resumed": summary["shards_resumed"],
                    "frames_per_s_per_worker": summary["frames_per_s"] or 0.0})
    run.log_metrics(metrics, 0)
    run.log_dict(dict(summary), "info.json")
    run.close("FINISHED")
    return run.run_id
