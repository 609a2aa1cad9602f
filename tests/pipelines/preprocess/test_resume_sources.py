"""Resuming a shard only when its sources are unchanged: a clip replaced under the same name, a changed
clip list or a changed config rewrites the shard (saying why); untouched inputs resume; a local source
that vanished is refused, not raised. Drives ``process_shard`` directly on copies of micro corpus clips."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import pytest

from thpad.pipelines.media.track import load_landmarker
from thpad.pipelines.media.video import read_video, write_video
from thpad.pipelines.preprocess.plan import ShardPlan
from thpad.pipelines.preprocess.run import fingerprint, process_shard, stale_reason
from thpad.storage.uri import Storage
from thpad.storage.voxceleb import SourceClip, discover

SHARD = "train-000000.tar"


@pytest.fixture(scope="module")
def landmarker(micro_params):
    return load_landmarker(micro_params.preprocess.track)


@pytest.fixture
def corpus(micro_corpus, tmp_path) -> tuple[SourceClip, ...]:
    """A private copy of two dev clips (video and truth .json), discovered: tests may overwrite them."""
    root, _ = micro_corpus
    copy = tmp_path / "corpus"
    for video in sorted((root / "dev").rglob("*.mp4"))[:2]:
        for path in (video, video.with_suffix(".json")):
            target = copy / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return discover(str(copy), Storage()).clips


def _run(clips: tuple[SourceClip, ...], out: Path, micro_params, landmarker, print_: str | None = None) -> dict:
    cfg = dataclasses.replace(micro_params.preprocess, out=str(out))
    plan = ShardPlan("train", 0, clips)
    return process_shard(plan, cfg, Storage(), landmarker, print_ or fingerprint(cfg))


def _trim(path: Path, num_frames: int) -> None:
    """Rewrite the clip at ``path`` with only its first ``num_frames`` frames (and their audio), mtime moved."""
    decoded = read_video(path)
    samples = num_frames * decoded.sample_rate // round(decoded.fps)
    write_video(path, decoded.frames[:num_frames], round(decoded.fps), decoded.audio[:samples], decoded.sample_rate)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks


def _rewrites(caplog) -> list[str]:
    """The rewrite lines ``process_shard`` logged."""
    lines = [r.getMessage() for r in caplog.records if r.name == "thpad.pipelines.preprocess.run"]
    return [line for line in lines if line.startswith("rewriting")]


def test_unchanged_sources_resume(corpus, micro_params, landmarker, tmp_path) -> None:
    out = tmp_path / "out"
    first = _run(corpus, out, micro_params, landmarker)
    shard = (out / "shards" / SHARD).read_bytes()
    again = _run(corpus, out, micro_params, landmarker)
    assert not first["resumed"] and again["resumed"]
    assert {**again, "resumed": False} == first
    assert (out / "shards" / SHARD).read_bytes() == shard


def test_clip_replaced_under_same_name_is_rewritten(corpus, micro_params, landmarker, tmp_path, caplog) -> None:
    out = tmp_path / "out"
    first = _run(corpus, out, micro_params, landmarker)
    replaced = corpus[0]
    _trim(Path(replaced.video_uri), 30)
    with caplog.at_level(logging.INFO, logger="thpad.pipelines.preprocess.run"):
        second = _run(corpus, out, micro_params, landmarker)
    assert not second["resumed"]
    frames = {row["key"]: row["num_frames"] for row in second["manifest"]}
    assert frames[replaced.key] == 30 != {row["key"]: row["num_frames"] for row in first["manifest"]}[replaced.key]
    assert second["sha256"] != first["sha256"]
    fresh = _run(corpus, tmp_path / "fresh", micro_params, landmarker)  # the new inputs from scratch
    assert (out / "shards" / SHARD).read_bytes() == (tmp_path / "fresh" / "shards" / SHARD).read_bytes()
    assert fresh["sources"] == second["sources"] != first["sources"]
    assert _rewrites(caplog) == [f"rewriting shard {SHARD}: its clip list or source files changed"]


def test_changed_clip_list_is_rewritten(corpus, micro_params, landmarker, tmp_path) -> None:
    out = tmp_path / "out"
    both = _run(corpus, out, micro_params, landmarker)
    one = _run(corpus[:1], out, micro_params, landmarker)
    assert not one["resumed"]
    assert len(both["manifest"]) == 2 and [row["key"] for row in one["manifest"]] == [corpus[0].key]
    assert not _run(corpus, out, micro_params, landmarker)["resumed"]  # and back


def test_config_change_is_named(corpus, micro_params, landmarker, tmp_path, caplog) -> None:
    out = tmp_path / "out"
    _run(corpus[:1], out, micro_params, landmarker, print_="config-a")
    with caplog.at_level(logging.INFO, logger="thpad.pipelines.preprocess.run"):
        again = _run(corpus[:1], out, micro_params, landmarker, print_="config-b")
    assert not again["resumed"]
    assert _rewrites(caplog) == [f"rewriting shard {SHARD}: the preprocess config changed"]


def test_stale_reason() -> None:
    record = {"fingerprint": "c", "sources": "s"}
    assert stale_reason(record, "c", "s") is None
    assert stale_reason(record, "c", "t") == "its clip list or source files changed"
    assert stale_reason(record, "d", "t") == "the preprocess config changed and its clip list or source files changed"
    assert stale_reason({"fingerprint": "c"}, "c", "s") == "its record predates source tracking"


def test_vanished_local_source_is_refused_not_raised(corpus, micro_params, landmarker, tmp_path) -> None:
    out = tmp_path / "out"
    first = _run(corpus, out, micro_params, landmarker)
    gone = corpus[1]
    Path(gone.video_uri).unlink()
    second = _run(corpus, out, micro_params, landmarker)
    assert not second["resumed"]
    assert [row["key"] for row in second["manifest"]] == [corpus[0].key] and len(first["manifest"]) == 2
    assert [rej["source"] for rej in second["rejects"]] == [gone.video_uri]
