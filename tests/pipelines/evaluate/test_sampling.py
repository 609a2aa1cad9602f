"""Sampling the evaluated clips in batches (``evaluate.sampling``) with the session's tiny random bundle: frame 0 and
any edited frame are pinned exactly, the noise depends on the seed alone, clips of different lengths share a call,
and the AR prior is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from thpad.pipelines.evaluate.clips import EvalClip
from thpad.pipelines.evaluate.sampling import default_sampler, sample_clips, with_guidance
from thpad.pipelines.generate.model import TalkingHeadModel


@pytest.fixture(scope="module")
def model(tiny_bundle) -> TalkingHeadModel:
    return TalkingHeadModel(tiny_bundle)


def clips_of(model: TalkingHeadModel, lengths: tuple[int, ...]) -> list[EvalClip]:
    rng = np.random.default_rng(0)
    audio_dim = model.priors["diffusion"].net.cfg.audio_dim
    nl_dim = model.head.cfg.nl_dim
    return [EvalClip(f"c{i}", "test", np.zeros((t, 8, 8, 3), np.uint8), np.zeros(t * 640, np.float32),
                     rng.normal(size=(t, audio_dim)).astype(np.float32), np.zeros((t, 2), np.float32),
                     rng.normal(size=(t, nl_dim)).astype(np.float32), None, None) for i, t in enumerate(lengths)]


def test_frame_zero_is_the_photos_code_and_lengths_are_kept(model) -> None:
    clips = clips_of(model, (40, 70, 40))
    sampler = default_sampler(model.sampling)
    out = sample_clips(model.priors["diffusion"], clips, sampler, seed=3)
    assert [len(x) for x in out] == [40, 70, 40]
    for x, c in zip(out, clips, strict=True):
        np.testing.assert_array_equal(x[0], c.f_nl[0])
        assert np.isfinite(x).all()


def test_the_seed_alone_decides_the_noise(model) -> None:
    clips = clips_of(model, (40, 40))
    sampler = with_guidance(default_sampler(model.sampling), 2.5, 0.0)
    a, b = (sample_clips(model.priors["diffusion"], clips, sampler, seed=1) for _ in range(2))
    c = sample_clips(model.priors["diffusion"], clips, sampler, seed=2)
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.allclose(a[1][1:], c[1][1:])


def test_an_edited_frame_is_pinned_and_the_ar_prior_ignores_the_seed(model) -> None:
    clips = clips_of(model, (50,))
    target = np.full(model.head.cfg.nl_dim, 0.5, np.float32)
    out = sample_clips(model.priors["diffusion"], clips, default_sampler(model.sampling), 0, {0: {30: target}})
    np.testing.assert_array_equal(out[0][30], target)
    ar = model.priors["ar"]
    np.testing.assert_array_equal(sample_clips(ar, clips, None, 0)[0], sample_clips(ar, clips, None, 9)[0])
    with pytest.raises(ValueError, match="sampler"):
        sample_clips(model.priors["diffusion"], clips, None, 0)
