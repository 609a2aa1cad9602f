"""The warping renderer's bounds (scripts/warp_oracle.py) on the micro corpus: pairs as the stage draws them, and a
run that trains and reports."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from scripts.warp_oracle import MIN_DISTANCE, draw_pairs, load_split, run


def test_pairs_come_from_one_clip_far_enough_apart(shards: str) -> None:
    val = load_split(shards, "val")
    photos, targets, t_src, t_tgt = draw_pairs(val, 6, np.random.default_rng(0))
    assert photos.shape == targets.shape == (6, 3, 56, 56) and t_src.shape == t_tgt.shape
    for photo, target in zip(photos, targets, strict=True):
        clip = next(frames for frames, _ in val if (frames == target).all(dim=(1, 2, 3)).any())
        i_src = int((clip == photo).all(dim=(1, 2, 3)).nonzero()[0])
        i_tgt = int((clip == target).all(dim=(1, 2, 3)).nonzero()[0])
        assert abs(i_src - i_tgt) >= MIN_DISTANCE


def test_a_short_run_reports_the_val_l1(shards: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(code="truth", shards=shards, contrastive="", steps=2, every=1, batch=2, lr=2e-3,
                              scales=2, seed=0, grad_clip=10.0)
    run(args)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["1", "2"]
    assert all(0.0 < float(line.split("val L1 ")[1].split()[0]) < 1.0 for line in lines)
