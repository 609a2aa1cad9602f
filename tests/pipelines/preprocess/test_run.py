"""Preprocessing end to end on Ray Data: accepted clips land in shards that read back aligned, every
bad input is refused with a reason, and nothing crashes the run."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from tests.pipelines.preprocess.bad_inputs import add_bad_inputs
from thpad.pipelines.preprocess.run import run_preprocess
from thpad.storage.manifest import (
    list_shards,
    manifest_uri,
    read_manifest,
    read_rejects,
    rejects_uri,
    required_shards,
)
from thpad.storage.readers import iter_clips
from thpad.storage.uri import Storage


@pytest.fixture(scope="module")
def corpus_with_bad_inputs(micro_corpus, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    root, summary = micro_corpus
    copy = tmp_path_factory.mktemp("mixed") / "corpus"
    shutil.copytree(root, copy)
    return copy, add_bad_inputs(copy, copy / summary["clips"][0])


@pytest.fixture(scope="module")
def preprocessed(corpus_with_bad_inputs, micro_params, ray_local, tmp_path_factory):
    src, expected = corpus_with_bad_inputs
    out = tmp_path_factory.mktemp("pre") / "out"
    track = dataclasses.replace(micro_params.preprocess.track, multi_face_policy="reject")
    cfg = dataclasses.replace(micro_params.preprocess, source=str(src), out=str(out), track=track)
    summary = run_preprocess(cfg, Storage())
    return cfg, summary, expected


def test_every_input_accepted_or_refused_once(preprocessed, corpus_with_bad_inputs) -> None:
    cfg, summary, expected = preprocessed
    src, _ = corpus_with_bad_inputs
    manifest = read_manifest(manifest_uri(cfg.out), Storage())
    rejects = read_rejects(rejects_uri(cfg.out), Storage())
    relative = manifest.column("source").to_pylist()  # below the corpus root: the same in every checkout
    assert all(not Path(r).is_absolute() for r in relative)
    accepted = [str(src / r) for r in relative]
    refused = rejects.column("source").to_pylist()
    every = sorted(str(p) for p in src.rglob("*.mp4"))
    assert sorted(accepted + refused) == every
    assert len(accepted) == 5 and summary["accepted"] == 5
    reasons = dict(zip(refused, rejects.column("reason").to_pylist(), strict=True))
    for source, pattern in expected.items():
        assert re.search(pattern, reasons[source]), f"{source}: reason {reasons[source]!r} !~ {pattern!r}"


def test_splits_and_shards(preprocessed) -> None:
    cfg, summary, _ = preprocessed
    assert set(summary["per_split"]) == {"train", "val", "test"} and summary["empty_splits"] == {}
    manifest = read_manifest(manifest_uri(cfg.out), Storage())
    timing = summary["timing"]  # what the workers spent: per frame in the shards, and starting
    assert timing["frames"] == sum(manifest.column("num_frames").to_pylist())
    assert timing["ms_per_frame_per_worker"] > 0 and timing["worker_start_seconds"] > 0
    for split in ("train", "val", "test"):
        shards = list_shards(cfg.out, split, Storage())
        assert shards, f"no {split} shards"
        rows = manifest.filter(pc.equal(manifest.column("split"), split))
        assert set(rows.column("shard").to_pylist()) <= {Path(s).name for s in shards}


def test_shards_read_back_aligned(preprocessed) -> None:
    cfg, _, _ = preprocessed
    shards = [s for split in ("train", "val", "test") for s in list_shards(cfg.out, split, Storage())]
    clips = list(iter_clips(shards, Storage()))
    assert len(clips) == 5
    for clip in clips:
        T = clip.num_frames
        assert clip.frames.shape == (T, 224, 224, 3)
        assert clip.mel.shape == (80, 4 * T) and clip.mel.dtype == np.float16
        assert clip.audio.shape == (T * 640,)
        assert {"identity", "video", "utterance", "split", "detection"} <= set(clip.meta)
        true = np.asarray(clip.meta["truth"]["landmarks"])  # (T, 68, 2) in crop pixels
        err = np.linalg.norm(clip.lmk - true, axis=2).mean()
        assert err < 4.0, f"{clip.key}: tracked landmarks are {err:.1f} px from the truth"
        eyes = clip.lmk[:, 36:42].mean(1).mean(0)
        assert np.allclose(eyes, (87, 59), atol=6), f"{clip.key}: right eye at {eyes}, template (87, 59)"


def test_true_motion_in_crop_coordinates(preprocessed) -> None:
    cfg, _, _ = preprocessed
    shards = [s for split in ("train", "val", "test") for s in list_shards(cfg.out, split, Storage())]
    clip = next(iter_clips(shards, Storage()))
    motion = clip.meta["truth"]["motion"]
    scale = np.linalg.norm(clip.xform[:, :, 0], axis=1)  # (T,) the similarity's scale per frame
    shift = np.hypot(motion["tx"], motion["ty"]) * scale
    assert np.allclose(np.hypot(motion["tx_crop"], motion["ty_crop"]), shift, atol=1e-3)
    assert len(motion["mouth"]) == clip.num_frames


def test_a_dev_folder_alone_is_preprocessed_and_the_empty_test_split_named(micro_corpus, micro_params, ray_local,
                                                                              tmp_path, caplog) -> None:
    """VoxCeleb2's dev set without its test set (downloaded apart): shards for what is there, a warning naming
    the empty split, and a refusal naming it from whatever needs it later."""
    root, _ = micro_corpus
    shutil.copytree(root / "dev", tmp_path / "corpus" / "dev")
    cfg = dataclasses.replace(micro_params.preprocess, source=str(tmp_path / "corpus"), out=str(tmp_path / "out"))
    with caplog.at_level("WARNING"):
        summary = run_preprocess(cfg, Storage())
    assert summary["accepted"] == len(list((root / "dev").rglob("*.mp4"))) and "test" not in summary["per_split"]
    assert "no test/ folder" in summary["empty_splits"]["test"]
    assert "split 'test' is empty" in caplog.text
    assert list_shards(cfg.out, "train", Storage()) and not list_shards(cfg.out, "test", Storage())
    with pytest.raises(ValueError, match=r"evaluate needs test clips.*no test-\*\.tar shard"):
        required_shards(cfg.out, "test", Storage(), "evaluate")
