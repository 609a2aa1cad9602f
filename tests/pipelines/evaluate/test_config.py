"""The evaluation's params: the full tier widens the quick one, and settings that leave nothing to measure are
refused with the key named."""

from __future__ import annotations

import pytest

from thpad.pipelines.evaluate.config import FULL_SEEDS, EvaluateConfig


def test_the_full_tier_measures_every_guidance_value_with_more_seeds_on_every_frame() -> None:
    quick = EvaluateConfig(guidance=(0.0, 2.5, 5.0), frame_guidance=(2.5,), seeds=2, frame_seeds=1)
    assert quick.tier() is quick
    full = EvaluateConfig(profile="full", guidance=(0.0, 2.5, 5.0), frame_guidance=(2.5,), seeds=2).tier()
    assert full.frame_guidance == (0.0, 2.5, 5.0)
    assert full.seeds == full.frame_seeds == FULL_SEEDS and full.identity_frames == 0


@pytest.mark.parametrize("bad", [{"profile": "fast"}, {"frame_guidance": ()}, {"guidance": ()}, {"seeds": 0},
                                 {"measurer_min_r": 1.5}, {"guidance": (-1.0,)}])
def test_settings_that_leave_nothing_to_measure_are_refused(bad) -> None:
    with pytest.raises(ValueError, match="evaluate"):
        EvaluateConfig(**bad)
