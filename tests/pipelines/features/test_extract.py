"""``extract_features`` on Ray Data (the session's local Ray) over the micro corpus's shards, with a random-init
tiny TalkingHead snapshot: one feature row per manifest clip, values equal to a direct per-frame computation,
resumption by fingerprint, and clear errors for a bad snapshot or a bad shard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from thpad.models.talking_head import (
    TALKING_HEAD_PRESETS,
    TalkingHead,
    build_talking_head,
    talking_head_snapshot_config,
)
from thpad.pipelines.features.config import FeaturesConfig
from thpad.pipelines.features.extract import progress_uri, remove_stale, run_extract
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.frames import MEL_BINS_PER_FRAME
from thpad.storage.checkpoint import load_snapshot, save_snapshot
from thpad.storage.features import feature_file_uri, list_feature_files, read_feature_file, read_info, read_split
from thpad.storage.fingerprint import file_fingerprint
from thpad.storage.manifest import list_shards, manifest_uri, read_manifest
from thpad.storage.readers import iter_raw, to_tensor
from thpad.storage.shards import MEL, decode_frames, decode_meta, load_npy
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config, Storage
from thpad.storage.windows import mel_window

SPLITS = ("train", "val", "test")


def make_snapshot(path: Path, seed: int) -> Path:
    """A random-init tiny TalkingHead with non-trivial BatchNorm statistics, saved as train_disentangle does."""
    torch.manual_seed(seed)
    model = TalkingHead(TALKING_HEAD_PRESETS["tiny"])
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return save_snapshot(path, talking_head_snapshot_config(model.cfg), model)


def make_config(shards: str, snapshot: Path, out: Path) -> FeaturesConfig:
    """2 actors of 1 CPU; 16 frames per batch, so each 50-frame clip spans several batches."""
    return FeaturesConfig(disentangle=str(snapshot), shards=shards, out=str(out), workers=2, cpus_per_worker=1,
                          gpus_per_worker=0, batch_frames=16,
                          tracking=TrackingConfig(tracking_uri=f"sqlite:///{out}.db", artifact_root=f"{out}-mlruns",
                                                  experiment="test-features", pipeline_id="test-pipeline"),
                          s3=S3Config(), ray=RayConfig(address="", num_cpus=2))


def all_shards(folder: str) -> list[str]:
    return [uri for split in SPLITS for uri in list_shards(folder, split, Storage())]


def read_all(out: Path) -> dict:
    return {c.key: c for split in SPLITS for c in read_split(str(out), split, Storage())}


@pytest.fixture(scope="module")
def first(shards, tmp_path_factory):
    """One full extraction: (config, summary)."""
    root = tmp_path_factory.mktemp("features")
    cfg = make_config(shards, make_snapshot(root / "disentangle.pt", seed=0), root / "out")
    return cfg, run_extract(cfg, Storage())


def test_every_clip_once_in_its_split_with_truth(first) -> None:
    cfg, summary = first
    storage = Storage()
    manifest = read_manifest(manifest_uri(cfg.shards), storage).to_pylist()
    metas = {key: decode_meta(key, members) for key, members in iter_raw(all_shards(cfg.shards), storage)}
    found = [(split, clip) for split in SPLITS for clip in read_split(cfg.out, split, storage)]
    assert sorted(c.key for _, c in found) == sorted(row["key"] for row in manifest)  # each clip exactly once
    rows = {row["key"]: row for row in manifest}
    for split, clip in found:
        row = rows[clip.key]
        assert split == clip.split == row["split"] and clip.identity == row["identity"]
        assert clip.f_nl.shape == (row["num_frames"], 42) and clip.f_a.shape == (row["num_frames"], 32)
        assert np.isfinite(clip.f_nl).all() and np.isfinite(clip.f_a).all()
        truth = metas[clip.key]["truth"]
        assert clip.truth == {"motion": truth["motion"], "events": truth["events"]}  # landmarks left out
    for uri in all_shards(cfg.shards):  # one feature file per shard, named after it, in its split folder
        split = Path(uri).name.split("-")[0]
        assert feature_file_uri(cfg.out, split, uri) in list_feature_files(cfg.out, split, storage)
    info = read_info(cfg.out, storage)
    counts = {s: sum(r["split"] == s for r in manifest) for s in SPLITS}
    assert info["clips"] == {s: n for s, n in counts.items() if n}
    assert info["nl_dim"] == 42 and info["audio_dim"] == 32 and info["model"] == "tiny"
    assert info["snapshot"] == file_fingerprint(cfg.disentangle, storage)
    assert summary["shards_resumed"] == 0 and summary["frames_per_s"] > 0


def test_values_equal_direct_per_frame_computation(first) -> None:
    cfg, _ = first
    model = load_snapshot(cfg.disentangle, build_talking_head).eval()
    size, features = model.cfg.visual.image_size, read_all(Path(cfg.out))
    window = model.cfg.audio.n_frames // MEL_BINS_PER_FRAME
    checked = 0
    for key, members in iter_raw(all_shards(cfg.shards), Storage()):
        mel = load_npy(members[MEL])  # (n_mels, 4T)
        num_frames = features[key].num_frames
        for t in (0, 17, num_frames - 1):  # both clip ends (zero-filled windows) and a frame of the 2nd batch
            with torch.no_grad():
                f_nl = model.visual_encoder(to_tensor(decode_frames(members, [t], size))).f_nl[0]  # (42,)
                audio = torch.from_numpy(mel_window(mel, t, window, mel.shape[1] // num_frames)[0])  # (80, 20)
                f_a = model.audio_encoder(audio[None, None])[0]  # (32,)
            np.testing.assert_allclose(features[key].f_nl[t], f_nl.numpy(), atol=1e-5, err_msg=f"{key} f_nl {t}")
            np.testing.assert_allclose(features[key].f_a[t], f_a.numpy(), atol=1e-5, err_msg=f"{key} f_a {t}")
            checked += 1
    assert checked == 3 * len(features)


def test_rerun_skips_finished_shards_and_redoes_a_removed_file(first) -> None:
    cfg, _ = first
    files = sorted(Path(cfg.out).rglob("*.parquet")) + sorted(Path(cfg.out).rglob("*.json"))
    before = {f: (f.stat().st_mtime_ns, f.read_bytes()) for f in files}
    removed = files[0]
    removed.unlink()
    summary = run_extract(cfg, Storage())
    assert summary["shards_resumed"] == len(list(Path(cfg.out).rglob("*.parquet"))) - 1
    rewritten = {removed, Path(progress_uri(cfg.out, removed.parent.name, removed.stem)), Path(cfg.out, "info.json")}
    for f in files:  # the same inputs give the same bytes; only the removed shard's files (and info) were rewritten
        assert f.read_bytes() == before[f][1], f
        assert (f.stat().st_mtime_ns != before[f][0]) == (f in rewritten), f


def test_changed_snapshot_redoes_every_shard_and_a_bad_shard_is_named(first, tmp_path) -> None:
    """One run for two behaviours (each Ray Data run costs seconds): a new snapshot invalidates every record,
    and a shard that cannot be read fails the run, naming it, after the other shards were done."""
    cfg, _ = first
    shutil.copytree(cfg.shards, tmp_path / "pre")  # same shard contents: only the snapshot changes their records
    shutil.copytree(cfg.out, tmp_path / "out")
    bad = all_shards(str(tmp_path / "pre"))[0]
    Path(bad).write_bytes(Path(bad).read_bytes()[:5000] + b"\x17" * 3000)  # a truncated, garbled tar
    changed = make_config(str(tmp_path / "pre"), make_snapshot(tmp_path / "other.pt", seed=1), tmp_path / "out")
    with pytest.raises(ValueError, match=f"shard {bad}"):
        run_extract(changed, Storage())
    assert not (tmp_path / "out" / "info.json").exists()  # no completion mark
    old, new = read_all(Path(cfg.out)), read_all(tmp_path / "out")
    for uri in all_shards(str(tmp_path / "pre")):
        split = Path(uri).name.split("-")[0]
        record = json.loads(Path(progress_uri(changed.out, split, uri)).read_text())
        redone = file_fingerprint(changed.disentangle, Storage()) in record["fingerprint"]
        assert redone == (uri != bad), uri  # the bad shard keeps its old (now stale) record and file
        keys = [c.key for c in read_feature_file(feature_file_uri(changed.out, split, uri), Storage())]
        assert all(np.allclose(new[k].f_nl, old[k].f_nl) == (uri == bad) for k in keys), uri


@pytest.mark.parametrize("content", [b"", b"garbage, not a torch file", "wrong_model"])
def test_bad_snapshot_error_names_the_file(shards, tmp_path, content) -> None:
    path = tmp_path / "disentangle.pt"
    if content == "wrong_model":  # a valid snapshot of another network (e.g. stage 1's)
        save_snapshot(path, {"audio": {}}, torch.nn.Linear(2, 2))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=str(path)):
        run_extract(make_config(shards, path, tmp_path / "out"), Storage())
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_missing_snapshot_error_names_the_file(shards, tmp_path) -> None:
    with pytest.raises(ValueError, match=f"no TalkingHead snapshot at {tmp_path / 'nothing.pt'}"):
        run_extract(make_config(shards, tmp_path / "nothing.pt", tmp_path / "out"), Storage())


def test_stale_shard_files_are_removed_and_nothing_else(tmp_path) -> None:
    out, storage = str(tmp_path / "out"), Storage()
    kept, gone = str(tmp_path / "pre/shards/train-000000.tar"), str(tmp_path / "pre/shards/train-000001.tar")
    for shard in (kept, gone):
        storage.write_bytes_atomic(feature_file_uri(out, "train", shard), b"features")
        storage.write_bytes_atomic(progress_uri(out, "train", shard), b"{}")
    foreign = tmp_path / "out" / "train" / "not-ours.parquet"  # no record: not written by extract_features
    foreign.write_bytes(b"x")
    assert remove_stale(out, [{"shard": kept, "split": "train"}], storage) == 1
    assert sorted(Path(p).name for p in storage.list_files(out)) == [
        "not-ours.parquet", "train-000000.json", "train-000000.parquet"]


def test_extraction_is_recorded_as_an_mlflow_stage_run(first) -> None:
    from mlflow.tracking import MlflowClient

    from thpad.pipelines.features.extract import record_run
    from thpad.storage.tracking import TAG_PARENT_RUN

    cfg, summary = first
    run_id = record_run(cfg, summary)
    client = MlflowClient(cfg.tracking.tracking_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["thpad.stage"] == "extract_features"
    assert run.data.tags[TAG_PARENT_RUN] and run.data.tags["thpad.input.disentangle"] == summary["snapshot"]
    assert run.data.params["batch_frames"] == "16"
    assert run.data.metrics["clips/train"] == summary["clips"]["train"] > 0
    assert [a.path for a in client.list_artifacts(run_id)] == ["info.json"]
