"""The generation protocol in f_nl space (cheap: sampling only, nothing rendered): TH-PAD's Table I at every guidance
value, with the paper's plain guidance and with the bundle's, the diffusion prior against the AR prior, MDM's
diversity and multimodality, smoothness, mask editing, and the DDIM-vs-DDPM sampler comparison.

f_nl lives in the judged model's own E_v space: these figures compare samplers and priors of one model, never two
models (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from thpad.models.diffusion.sampling import SamplerConfig
from thpad.models.generation import MotionPrior
from thpad.pipelines.evaluate.clips import EvalClip
from thpad.pipelines.evaluate.config import EvaluateConfig
from thpad.pipelines.evaluate.sampling import sample_clips, timed_samples, with_guidance
from thpad.pipelines.evaluate.summary import clean, seeds_summary
from thpad.pipelines.metrics.motion import frames, frechet_distance, speed
from thpad.pipelines.metrics.sets import diversity, multimodality, smoothness_ratio, table1_row

SAMPLER_STEPS = (("ddim", 25), ("ddim", 50), ("ddpm", None))


def clip_features(seqs: Sequence[np.ndarray]) -> np.ndarray:
    """One vector per sampled clip for MDM's diversity and multimodality: the mean and the standard deviation of
    its frames over time, (n, 2 N)."""
    return np.stack([np.concatenate([s.mean(axis=0), s.std(axis=0)]) for s in seqs])


def motion_stats(runs: Sequence[Sequence[np.ndarray]], real: Sequence[np.ndarray], cfg: EvaluateConfig
                 ) -> dict[str, Any]:
    """Table I (mean and CI over the runs, one run per seed), diversity, multimodality and smoothness of sampled
    trajectories against the real ones; runs[k][i] is seed k's sample of clip i."""
    out = seeds_summary([table1_row(run, real) for run in runs])
    rng = np.random.default_rng(cfg.seed)
    pooled = [s for run in runs for s in run]
    out["diversity"] = clean(diversity(clip_features(pooled), cfg.diversity_pairs, rng)) if len(pooled) > 1 else None
    if len(runs) > 1:
        groups = [clip_features([run[i] for run in runs]) for i in range(len(real))]
        out["multimodality"] = clean(multimodality(groups, cfg.multimodality_pairs, rng))
    else:
        out["multimodality"] = None
    out["smoothness_ratio"] = clean(smoothness_ratio(pooled, real))
    return out


Table1 = tuple[dict[str, Any], dict[float, list[list[np.ndarray]]]]


def table1(prior: MotionPrior, clips: Sequence[EvalClip], base: SamplerConfig, cfg: EvaluateConfig, rescale: float,
           plain: Table1 | None = None) -> Table1:
    """Table I at every ``cfg.guidance`` value with guidance rescale ``rescale``: {"s2.5": {...}, ...} and the
    samples by s (``seeds`` runs each). At s = 0 and s = 1 guidance is a single pass that the rescale does not
    touch, so those rows are taken from ``plain`` (the same table without rescale) when given."""
    real = [c.f_nl for c in clips]
    seeds = range(cfg.seed, cfg.seed + cfg.seeds)
    rows, samples = {}, {}
    for s in cfg.guidance:
        if plain is not None and s in (0.0, 1.0):
            rows[f"s{s:g}"], samples[s] = plain[0][f"s{s:g}"], plain[1][s]
            continue
        sampler = with_guidance(base, s, rescale)
        runs = [sample_clips(prior, clips, sampler, seed) for seed in seeds]
        rows[f"s{s:g}"], samples[s] = motion_stats(runs, real, cfg), runs
    return rows, samples


def ar_stats(prior: MotionPrior, clips: Sequence[EvalClip], cfg: EvaluateConfig) -> tuple[dict[str, Any], list]:
    """The AR prior's row (deterministic: one run, so no CI and no multimodality) and its samples."""
    run = sample_clips(prior, clips, None, cfg.seed)
    return motion_stats([run], [c.f_nl for c in clips], cfg), run


def editing(prior: MotionPrior, clips: Sequence[EvalClip], sampler: SamplerConfig, cfg: EvaluateConfig
            ) -> tuple[dict[str, Any], list[np.ndarray], list[int]]:
    """Mask editing: each clip's frame ``edit_frame`` pinned to the code of another clip's frame there.

    Returns:
        {"pinned_error": mean |x - target| at the pinned frame (0 when editing pins exactly), "speed_ratio": the
        mean f_nl speed within ``edit_window`` frames of the pinned one over the same in unedited samples (1: the
        edit joins smoothly; much above 1: a jump)}, the edited samples and each clip's pinned frame.
    """
    n = len(clips)
    frames_at = [min(cfg.edit_frame, c.num_frames - 1) for c in clips]
    targets = [clips[(i + 1) % n].f_nl[min(frames_at[i], clips[(i + 1) % n].num_frames - 1)] for i in range(n)]
    known = {i: {frames_at[i]: targets[i]} for i in range(n)}
    edited = sample_clips(prior, clips, sampler, cfg.seed, known)
    plain = sample_clips(prior, clips, sampler, cfg.seed)
    error = np.mean([np.abs(e[f] - t).mean() for e, f, t in zip(edited, frames_at, targets, strict=True)])

    def around(seqs: Sequence[np.ndarray]) -> float:
        w = cfg.edit_window
        near = [speed(s, 0)[max(0, f - w):f + w + 1].mean() for s, f in zip(seqs, frames_at, strict=True)]
        return float(np.mean(near))

    return {"pinned_error": clean(error), "speed_ratio": clean(around(edited) / around(plain))}, edited, frames_at


def sampler_comparison(prior: MotionPrior, clips: Sequence[EvalClip], base: SamplerConfig, cfg: EvaluateConfig,
                       fps: float) -> dict[str, Any]:
    """DDIM-25, DDIM-50 and DDPM (all T steps) at the bundle's guidance on the first ``ddpm_clips`` clips: the
    seconds of compute per second of video and FID_fm against those clips' real f_nl."""
    subset = list(clips[:cfg.ddpm_clips])
    real = frames([c.f_nl for c in subset])
    out: dict[str, Any] = {"clips": len(subset)}
    warm = SamplerConfig(guidance=base.guidance, sampler="ddim", num_steps=2)
    sample_clips(prior, subset, warm, cfg.seed)  # the first call pays torch's one-off costs; keep them out of timing
    for kind, steps in SAMPLER_STEPS:
        sampler = SamplerConfig(guidance=base.guidance, sampler=kind, num_steps=steps, eta=base.eta,
                                guidance_rescale=base.guidance_rescale)
        runs, cost = timed_samples(prior, subset, sampler, [cfg.seed], fps)
        name = kind if steps is None else f"{kind}{steps}"
        out[name] = {"seconds_per_video_second": clean(cost), "fid_fm": clean(frechet_distance(frames(runs[0]), real))}
    return out
