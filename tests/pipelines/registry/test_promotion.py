"""The champion gate: each outcome on figures laid out as ``metrics/evaluate.json``, including overlapping CIs that
must not promote, and the defaults naming keys that the committed ``metrics/evaluate.json`` really has."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from thpad.pipelines.registry.promotion import PromotionConfig, decide, lookup

REPO = Path(__file__).resolve().parents[3]


def metrics(snd: float = 2.40, ci: float = 0.03, lip_r: float = 0.19, share: float = 0.90, l1: float = 0.168,
            copy_l1: float = 0.190) -> dict:
    """A minimal evaluate.json with the keys the gate reads."""
    return {"measured": {"s2.5": {"snd": snd, "lip_r": lip_r, "ci": {"snd": ci, "lip_r": 0.4}}},
            "identity": {"same_person_share": share},
            "reconstruction": {"l1": l1, "copy_photo": {"l1": copy_l1}}}


def version(number: int, fingerprint: str = "eval-a", **figures: float) -> dict:
    return {"version": number, "fingerprint": fingerprint, "metrics": metrics(**figures)}


def test_default_keys_exist_in_the_committed_evaluation() -> None:
    evaluation = json.loads((REPO / "metrics" / "evaluate.json").read_text())
    cfg = PromotionConfig()
    paths = [cfg.primary, cfg.primary_ci, cfg.recon_l1, cfg.baseline_l1, cfg.identity, *(g.path for g in cfg.guards)]
    for path in paths:
        assert isinstance(lookup(evaluation, path), float), path


def test_first_version_above_the_floor_is_promoted() -> None:
    decision = decide(version(1), None)
    assert decision.outcome == "promote"
    assert "no champion yet" in decision.reason
    assert decision.figures["challenger (version 1)"]["measured.s2.5.snd"] == 2.40


@pytest.mark.parametrize(("figures", "reason"), [
    ({"l1": 0.20}, "does not beat copying the photo"),
    ({"l1": 0.19}, "does not beat copying the photo"),  # a tie is not a win
    ({"share": 0.3}, "identity share 0.300 is below the floor 0.500"),
])
def test_a_version_below_the_floor_stays_candidate(figures, reason) -> None:
    for champion in (None, version(1)):
        decision = decide(version(2, **figures), champion)
        assert decision.outcome == "below_floor"
        assert reason in decision.reason and "stays candidate" in decision.reason


def test_unavailable_floor_metric_is_below_the_floor() -> None:
    challenger = version(1)
    challenger["metrics"]["identity"]["same_person_share"] = "unavailable: no face found"
    decision = decide(challenger, None)
    assert decision.outcome == "below_floor" and "unavailable: no face found" in decision.reason


def test_a_clear_win_beyond_both_cis_is_promoted() -> None:
    decision = decide(version(2, snd=2.30, ci=0.03), version(1, snd=2.40, ci=0.03))
    assert decision.outcome == "promote", decision.reason


def test_overlapping_cis_keep_the_champion() -> None:
    # 0.05 better, but the intervals 2.35 ± 0.03 and 2.40 ± 0.03 overlap (combined CI 0.06).
    decision = decide(version(2, snd=2.35, ci=0.03), version(1, snd=2.40, ci=0.03))
    assert decision.outcome == "keep"
    assert "not more than the combined 95 % CI 0.0600" in decision.reason


def test_a_worse_primary_keeps_the_champion() -> None:
    assert decide(version(2, snd=2.60, ci=0.0), version(1, snd=2.40, ci=0.0)).outcome == "keep"


@pytest.mark.parametrize(("figures", "guard"), [
    ({"lip_r": 0.10}, "measured.s2.5.lip_r"),
    ({"share": 0.80}, "identity.same_person_share"),
    ({"l1": 0.185}, "reconstruction.l1"),
])
def test_a_guard_that_falls_back_beyond_its_margin_keeps_the_champion(figures, guard) -> None:
    decision = decide(version(2, snd=2.0, **figures), version(1))
    assert decision.outcome == "keep"
    assert f"guard {guard} fell back" in decision.reason


def test_a_guard_within_its_margin_does_not_block() -> None:
    assert decide(version(2, snd=2.0, lip_r=0.16), version(1, lip_r=0.19)).outcome == "promote"


def test_other_evaluation_settings_are_not_comparable() -> None:
    decision = decide(version(2, fingerprint="eval-b", snd=1.0), version(1, fingerprint="eval-a"))
    assert decision.outcome == "not_comparable"
    assert "re-evaluate challenger (version 2) under champion (version 1)" in decision.reason


def test_a_primary_metric_missing_on_one_side_is_not_comparable() -> None:
    champion = version(1)
    del champion["metrics"]["measured"]["s2.5"]["ci"]
    decision = decide(version(2, snd=2.0), champion)
    assert decision.outcome == "not_comparable" and "no key measured.s2.5.ci.snd" in decision.reason


def test_a_guard_unavailable_on_both_sides_is_skipped_and_on_one_side_not_comparable() -> None:
    challenger, champion = version(2, snd=2.0), version(1)
    for v in (challenger, champion):
        v["metrics"]["measured"]["s2.5"]["lip_r"] = "unavailable: measurer r 0.3 < 0.5"
    decision = decide(challenger, champion)
    assert decision.outcome == "promote" and "lip_r not checked" in decision.reason
    champion = copy.deepcopy(champion)
    champion["metrics"]["measured"]["s2.5"]["lip_r"] = 0.2
    assert decide(challenger, champion).outcome == "not_comparable"


def test_lookup_reads_nested_keys_with_dots_and_refuses_non_numbers() -> None:
    data = {"a": {"s2.5": {"x": 1, "flag": True, "nan": float("nan")}}}
    assert lookup(data, ("a", "s2.5", "x")) == 1.0
    assert lookup(data, ("a", "s2.5", "flag")) == "a.s2.5.flag is True, not a number"
    assert "not a number" in lookup(data, ("a", "s2.5", "nan"))
    assert lookup(data, ("a", "s5", "x")) == "no key a.s5.x"
