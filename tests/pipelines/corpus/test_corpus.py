"""The sample corpus: layout, decoded video and audio properties, determinism and resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from thpad.pipelines.corpus.build import build_corpus
from thpad.pipelines.corpus.plan import plan_clips
from thpad.pipelines.media.video import read_video


def test_layout_matches_voxceleb2(micro_corpus) -> None:
    root, summary = micro_corpus
    mp4s = sorted(str(p.relative_to(root)) for p in root.rglob("*.mp4"))
    assert mp4s == sorted(summary["clips"])
    for rel in mp4s:
        split, kind, identity, video, name = rel.split("/")
        assert split in {"dev", "test"} and kind == "mp4"
        assert identity.startswith("id") and len(identity) == 7 and len(video) == 11
        assert name.endswith(".mp4") and len(name) == 9
        assert (root / rel).with_suffix(".json").is_file()
    assert {c.split("/")[0] for c in mp4s} == {"dev", "test"}
    assert (root / "corpus.json").is_file()


def test_portraits_never_straddle_splits(micro_corpus) -> None:
    _, summary = micro_corpus
    split_of = {}
    for ident in summary["identities"]:
        assert split_of.setdefault(ident["portrait"], ident["split"]) == ident["split"]


def test_decoded_video_and_audio(micro_corpus, micro_params) -> None:
    root, summary = micro_corpus
    cfg = micro_params.corpus
    clip = root / summary["clips"][0]
    video = read_video(clip)
    truth = json.loads(clip.with_suffix(".json").read_text())
    num_frames = round(cfg.seconds * cfg.fps)
    assert video.frames.shape == (num_frames, 224, 224, 3)
    assert video.fps == 25
    assert video.sample_rate == 16000 and video.audio is not None
    assert abs(len(video.audio) / 16000 - cfg.seconds) < 0.1
    assert float(np.sqrt(np.mean(video.audio**2))) > 0.01  # speech, not silence
    assert truth["num_frames"] == num_frames
    assert all(len(v) == num_frames for v in truth["motion"].values())
    assert np.array(truth["landmarks"]).shape == (num_frames, 68, 2)


def test_deterministic_for_a_seed(micro_corpus, micro_params, tmp_path: Path) -> None:
    root, summary = micro_corpus
    cfg = dataclasses.replace(micro_params.corpus, identities=5, workers=2)
    again = build_corpus(cfg, tmp_path, progress=False)
    assert again["clips"] == summary["clips"]
    for rel in summary["clips"]:
        for suffix in (".mp4", ".json"):
            a = (root / rel).with_suffix(suffix).read_bytes()
            b = (tmp_path / rel).with_suffix(suffix).read_bytes()
            assert a == b, f"{Path(rel).with_suffix(suffix)} differs between two builds with the same seed"


def test_other_seed_differs(micro_params) -> None:
    a = plan_clips(micro_params.corpus)
    b = plan_clips(dataclasses.replace(micro_params.corpus, seed=1))
    assert [p.seed for p in a] != [p.seed for p in b]


def test_rerun_resumes_and_cleans_debris(micro_corpus, micro_params, tmp_path: Path) -> None:
    cfg = dataclasses.replace(micro_params.corpus, workers=1)
    root, summary = micro_corpus
    # A copy of the finished corpus with one clip unfinished (its truth JSON missing) and debris.
    for rel in summary["clips"][:2]:
        for suffix in (".mp4", ".json"):
            dst = (tmp_path / rel).with_suffix(suffix)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes((root / rel).with_suffix(suffix).read_bytes())
    unfinished = (tmp_path / summary["clips"][1]).with_suffix(".json")
    unfinished.unlink()
    kept = tmp_path / summary["clips"][0]
    mtime = kept.stat().st_mtime_ns
    debris = kept.with_name(".00009.mp4.partial-123")
    debris.write_bytes(b"half")
    build_corpus(cfg, tmp_path, progress=False)
    assert kept.stat().st_mtime_ns == mtime, "a finished clip was rendered again"
    assert unfinished.is_file() and not debris.exists()
    assert unfinished.read_bytes() == (root / summary["clips"][1]).with_suffix(".json").read_bytes()
