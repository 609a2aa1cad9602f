"""Deterministic plan of the sample corpus: which identity comes from which portrait, which split it
is in, and every clip's ids and seed, all derived from the config and its seed alone."""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from thpad.pipelines.corpus.config import CorpusConfig
from thpad.pipelines.corpus.portraits import PORTRAITS, Variation, draw_variation
from thpad.storage.voxceleb import ClipId

_VIDEO_ALPHABET = string.ascii_letters + string.digits + "_"  # no "-": ids never look like flags


@dataclass(frozen=True)
class IdentityPlan:
    """One identity: a portrait with a variation, and the split its portrait belongs to."""

    index: int
    identity: str
    portrait: str
    variation: Variation
    split: str


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: its ids, its identity and the seed of its speech and motion."""

    clip: ClipId
    identity: IdentityPlan
    seed: int


def test_portraits(cfg: CorpusConfig) -> tuple[str, ...]:
    """The names of the portraits whose identities all go to ``test/`` (chosen by the seed)."""
    if not 0 <= cfg.test_portraits < len(PORTRAITS):
        raise ValueError(f"corpus.test_portraits must be in [0, {len(PORTRAITS) - 1}], got {cfg.test_portraits}")
    order = np.random.default_rng([cfg.seed, 7]).permutation(len(PORTRAITS))
    return tuple(PORTRAITS[i].name for i in order[len(PORTRAITS) - cfg.test_portraits:])


def plan_identities(cfg: CorpusConfig) -> list[IdentityPlan]:
    """Identity ``i`` is variation ``i // P`` of portrait ``i % P`` (P portraits); raises when a split is empty."""
    held_out = test_portraits(cfg)
    plans = []
    for i in range(cfg.identities):
        portrait = PORTRAITS[i % len(PORTRAITS)].name
        rng = np.random.default_rng([cfg.seed, 1, i])
        plans.append(IdentityPlan(i, f"id{i + 1:05d}", portrait, draw_variation(rng, i // len(PORTRAITS)),
                                  "test" if portrait in held_out else "dev"))
    splits = {p.split for p in plans}
    wanted = {"dev", "test"} if cfg.test_portraits else {"dev"}
    if splits != wanted:
        raise ValueError(f"corpus: {cfg.identities} identities leave split(s) {sorted(wanted - splits)} empty; "
                         f"use at least {len(PORTRAITS)} identities")
    return plans


def plan_clips(cfg: CorpusConfig) -> list[ClipPlan]:
    """Every clip of the corpus, identities in order, utterances numbered from 00001 per video."""
    clips = []
    for ident in plan_identities(cfg):
        rng = np.random.default_rng([cfg.seed, 2, ident.index])
        videos = ["".join(rng.choice(list(_VIDEO_ALPHABET), 11)) for _ in range(cfg.videos_per_identity)]
        for c in range(cfg.clips):
            video = videos[c % len(videos)]
            utterance = f"{c // len(videos) + 1:05d}"
            seed = int(np.random.SeedSequence([cfg.seed, 3, ident.index, c]).generate_state(1)[0])
            clips.append(ClipPlan(ClipId(ident.split, ident.identity, video, utterance), ident, seed))
    return clips
