"""The motion oracle (scripts/motion_worth.py) on the micro corpus: true pose predicts the rendered pixels, and the
same pose series shuffled over the frames does not."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.motion_worth import FACTOR_SETS, clips, linear_l1, motion_worth
from thpad.storage.uri import Storage


def test_true_pose_predicts_pixels_and_shuffled_pose_does_not(shards: str) -> None:
    storage = Storage()
    rows = motion_worth(shards, storage, size=28, min_distance=10)
    assert set(rows) == {"copy", "mean", *FACTOR_SETS}
    assert rows["pose"] < rows["mean"] < rows["copy"]
    frames, motion = next(clips(shards, "val", storage, 28))
    pose = FACTOR_SETS["pose"]
    shuffled = {k: np.random.default_rng(0).permutation(v) for k, v in motion.items()}
    assert linear_l1(frames, shuffled, pose) > linear_l1(frames, motion, pose)


def test_missing_shards_are_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no val shards"):
        motion_worth(str(tmp_path / "nothing"), Storage(), 28, 10)
