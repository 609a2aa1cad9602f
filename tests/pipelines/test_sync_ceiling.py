"""The sync oracle (scripts/sync_ceiling.py) on the micro corpus: its energy predictor follows the true mouth
opening, and a constant prediction scores exactly chance."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.sync_ceiling import clips, energy_features, fit_predictor, sync_scores
from thpad.storage.uri import Storage


def test_energy_predicts_the_mouth_and_a_constant_guess_is_chance(shards: str) -> None:
    storage = Storage()
    weights = fit_predictor(shards, storage)
    pairs = [(energy_features(mel, t) @ weights, mouth[t]) for mel, mouth in clips(shards, "train", storage)
             for t in range(2, len(mouth) - 2)]
    predicted, true = np.array(pairs).T
    assert np.corrcoef(predicted, true)[0, 1] > 0.5  # loud frames open the mouth in the sample corpus
    scores = sync_scores(shards, storage, weights, 8)
    assert scores["queries"] == 8 and 0.0 <= scores["top1"] <= 1.0 and scores["chance_top1"] == 0.125
    constant = sync_scores(shards, storage, np.array([0.0, 0.0, 0.0, 0.3]), 8)
    assert constant["pairwise"] == 0.5  # every comparison a tie


def test_missing_shards_are_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no train shards"):
        fit_predictor(str(tmp_path / "nothing"), Storage())
