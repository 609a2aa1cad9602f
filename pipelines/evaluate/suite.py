"""The evaluation suite end to end (issue 21; every key in docs/metrics.md): load the clips, validate the measurer,
run the generation protocol in f_nl space, render and measure the reconstruction, its disentanglement views and the
sampled videos, and gather everything into one nested dict plus what the report draws.

``run_suite`` takes a loaded model, so that ``thpad evaluate`` can judge any bundle against any preprocessed folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thpad.models.diffusion.sampling import SamplerConfig
from thpad.pipelines.evaluate import fnl_space
from thpad.pipelines.evaluate.clips import EvalClip, load_clips, train_frames
from thpad.pipelines.evaluate.config import EvaluateConfig
from thpad.pipelines.evaluate.frame_space import (
    IdentityProbe,
    ImageComparison,
    RenderedSet,
    disentanglement,
    envelopes,
    motion_set,
    real_reference,
    reconstruction,
    render_set,
    summarise_runs,
    timeline_of,
)
from thpad.pipelines.evaluate.measured import MeasuredClip, Measurer, MotionSpace, validate
from thpad.pipelines.evaluate.sampling import default_sampler, sample_clips, with_guidance
from thpad.pipelines.evaluate.summary import clean, unavailable
from thpad.pipelines.generate.model import TalkingHeadModel
from thpad.pipelines.metrics.identity import IdentityEncoder
from thpad.storage.uri import Storage

log = logging.getLogger(__name__)


@dataclass
class SuiteResult:
    """What the suite found: ``metrics`` (the JSON), the rows of the Table I figure, and what the report shows."""

    metrics: dict[str, Any]
    table1_rows: list[dict[str, Any]] = field(default_factory=list)
    sampler_rows: list[dict[str, Any]] = field(default_factory=list)
    videos: dict[str, list[np.ndarray]] = field(default_factory=dict)  # name -> frames of the first clips
    tsne: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # "pose" | "expression" -> set -> (n, d)
    timeline: dict[str, np.ndarray] = field(default_factory=dict)  # clip 0: set -> (T, 4) yaw, pitch, roll, -EAR
    clips: list[dict[str, Any]] = field(default_factory=list)  # key, split, frames per evaluated clip
    audio: list[np.ndarray] = field(default_factory=list)  # the first clips' speech, for the videos


class Clock:
    """Seconds per step of the suite, logged as they finish."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = fn()
        self.seconds[name] = round(time.perf_counter() - start, 2)
        log.info("evaluate: %s in %.1f s", name, self.seconds[name])
        return out


def table1_rows(rows: dict[str, Any], series: str) -> list[dict[str, Any]]:
    """Per (s, metric) rows of one Table I for the CSV plot and the guidance figure."""
    out = []
    for key, row in rows.items():
        for metric in ("var", "fid_fm", "fid_dfm", "snd"):
            if isinstance(row.get(metric), float):
                out.append({"s": float(key[1:]), "metric": metric, "mean": row[metric], "ci": row["ci"][metric],
                            "space": series})
    return out


def run_suite(model: TalkingHeadModel, preprocessed: str, cfg: EvaluateConfig, storage: Storage) -> SuiteResult:
    """Evaluate ``model`` on the ``cfg.splits`` of a preprocessed folder (see the module docstring)."""
    cfg = cfg.tier()
    clock = Clock()
    clips = clock.run("load clips", lambda: load_clips(model, preprocessed, cfg.splits, cfg.clips_per_split, storage))
    measurer = clock.run("fit the expression PCA", lambda: Measurer(
        train_frames(preprocessed, cfg.pca_clips, model.image_size, storage), cfg.expression_components))
    real = clock.run("measure the real frames", lambda: [measurer.measure(c.frames) for c in clips])
    status = validate(real, clips, cfg.measurer_min_r)
    space = MotionSpace(real, status)
    result = SuiteResult(metrics={"measurer": measurer_block(status, cfg, space)})
    result.clips = [{"key": c.key, "split": c.split, "frames": c.num_frames} for c in clips]
    result.audio = [c.audio for c in clips[:cfg.video_clips]]
    base = default_sampler(model.sampling)
    diffusion, ar = model.priors["diffusion"], model.priors["ar"]
    plain = clock.run("Table I, f_nl, plain guidance", lambda: fnl_space.table1(diffusion, clips, base, cfg, 0.0))
    rescaled, runs = clock.run("Table I, f_nl, the bundle's guidance", lambda: fnl_space.table1(
        diffusion, clips, base, cfg, base.guidance_rescale, plain))
    paper = plain[0]
    ar_row, ar_run = clock.run("AR prior, f_nl", lambda: fnl_space.ar_stats(ar, clips, cfg))
    result.metrics |= {"table1": paper, "table1_rescaled": rescaled}
    result.table1_rows = table1_rows(paper, "f_nl plain guidance") + table1_rows(rescaled, "f_nl bundle guidance")
    result.metrics["editing"] = clock.run("editing", lambda: fnl_space.editing(diffusion, clips, base, cfg)[0])
    if cfg.ddpm_clips:
        cmp = clock.run("DDIM vs DDPM", lambda: fnl_space.sampler_comparison(diffusion, clips, base, cfg, model.fps))
        result.metrics["ddim_vs_ddpm"] = cmp
        result.sampler_rows = [{"sampler": k, **v} for k, v in cmp.items() if isinstance(v, dict)]
    result.metrics["ar"] = {"f_nl": ar_row}
    frame_metrics(model, clips, real, measurer, status, space, cfg, base, runs, ar_run, result, clock)
    result.metrics["reconstruction"]["fid"] = unavailable("FID needs Inception weights; none are configured and "
                                                          "nothing is downloaded")
    result.metrics["identity"]["arcface_csim"] = unavailable("ArcFace weights are not configured")
    result.metrics["lip"] |= {k: unavailable("SyncNet weights are not configured") for k in ("lse_d", "lse_c")}
    result.metrics["run"] = {"clips": len(clips), "frames": int(sum(c.num_frames for c in clips)),
                             "splits": sorted({c.split for c in clips}), "tier": cfg.profile,
                             "seconds": clock.seconds, "total_seconds": round(sum(clock.seconds.values()), 1)}
    return result


def measurer_block(status: dict[str, dict], cfg: EvaluateConfig, space: MotionSpace) -> dict[str, Any]:
    """``measurer.*``: each factor's r, whether it passed, why not, and the measured space's columns."""
    return {"r": {k: clean(v["r"]) for k, v in status.items()},
            "available": {k: v["available"] for k, v in status.items()},
            "reason": {k: v["reason"] for k, v in status.items() if v["reason"]},
            "min_r": cfg.measurer_min_r, "space_columns": space.columns}


def frame_metrics(model: TalkingHeadModel, clips: list[EvalClip], real: list[MeasuredClip], measurer: Measurer,
                  status: dict, space: MotionSpace, cfg: EvaluateConfig, base: SamplerConfig,
                  runs: dict[float, list[list[np.ndarray]]], ar_run: list[np.ndarray], result: SuiteResult,
                  clock: Clock) -> None:
    """The frame-space part of the suite (rendering and measuring), written into ``result.metrics``."""
    m, keep = result.metrics, cfg.video_clips
    images = ImageComparison(clips)
    recon = clock.run("render the reconstruction", lambda: render_set(
        model, measurer, clips, "reconstruction", [(c.f_nl, c.f_l) for c in clips], keep, images.observe))
    m |= reconstruction(images, recon.measured, real, clips, status)
    nl0 = clock.run("render with f_nl zeroed", lambda: render_set(
        model, measurer, clips, "nonlip zero", [(np.zeros_like(c.f_nl), c.f_l) for c in clips], 0))
    lip0 = clock.run("render with f_l zeroed", lambda: render_set(
        model, measurer, clips, "lip zero", [(c.f_nl, np.zeros_like(c.f_l)) for c in clips], 0))
    m["disentanglement"] = disentanglement(nl0.measured, lip0.measured, real, clips, status)
    encoder = clock.run("load dlib's face descriptor", IdentityEncoder)
    default_s = base.guidance if base.guidance in cfg.frame_guidance else cfg.frame_guidance[-1]
    identity = IdentityProbe(encoder, clips, cfg.identity_frames)
    generated: dict[float, list[RenderedSet]] = {}
    for s in cfg.frame_guidance:
        generated[s] = []
        for k, seed in enumerate(range(cfg.seed, cfg.seed + cfg.frame_seeds)):
            f_nl = runs[s][k] if s in runs and k < len(runs[s]) else sample_clips(
                model.priors["diffusion"], clips, with_guidance(base, s), seed)
            observe = identity.observe if (s == default_s and k == 0) else None
            generated[s].append(clock.run(f"render s={s:g} seed {seed}", lambda f_nl=f_nl, s=s, seed=seed, o=observe:
                                          render_set(model, measurer, clips, f"s={s:g} seed {seed}",
                                                     list(zip(f_nl, [c.f_l for c in clips], strict=True)), keep, o)))
    ar_identity = IdentityProbe(encoder, clips, cfg.identity_frames)
    ar_set = clock.run("render the AR prior", lambda: render_set(
        model, measurer, clips, "AR", list(zip(ar_run, [c.f_l for c in clips], strict=True)), keep,
        ar_identity.observe))
    env = envelopes(clips, model.sample_rate, model.fps)

    def summary(sets: Sequence[RenderedSet]) -> dict[str, Any]:
        return summarise_runs([motion_set(g.measured, real, space, env, clips, status, cfg.max_shift) for g in sets],
                              status, space)

    m["measured"] = {f"s{s:g}": summary(sets) for s, sets in generated.items()}
    m["measured"]["real"] = real_reference(real, env, status, cfg.max_shift)
    shown = m["measured"][f"s{default_s:g}"]
    m["identity"] = identity.result() | {"guidance": default_s}
    m["lip"] |= {k: shown[k] for k in ("lip_offset", "lip_r")} | {"generated_mouth_open_r": shown["mouth_open_r"],
                                                                  "guidance": default_s}
    m["ar"]["measured"] = summary([ar_set])
    m["ar"]["identity"] = ar_identity.result()
    m["smoothness"] = {"f_nl": m["table1_rescaled"].get(f"s{default_s:g}", {}).get("smoothness_ratio"),
                       "pose": shown.get("pose_smoothness_ratio"), "guidance": default_s}
    m["audio_tied"] = {"generated": shown.get("head_speed_audio_r"),
                       "real": m["measured"]["real"].get("head_speed_audio_r"),
                       "ar": m["ar"]["measured"].get("head_speed_audio_r")}
    first = generated[default_s][0]
    result.videos = {"real": [c.frames for c in clips[:keep]], "reconstruction": recon.frames,
                     f"diffusion s={default_s:g}": first.frames, "AR": ar_set.frames}
    result.tsne = tsne_sets(real, first, ar_set, space)
    result.timeline = {"real": timeline_of(real[0]), "diffusion": timeline_of(first.measured[0]),
                       "AR": timeline_of(ar_set.measured[0])}
    result.table1_rows += [
        {"s": float(key[1:]), "metric": metric, "mean": row[metric], "ci": row["ci"].get(metric), "space": "measured"}
        for key, row in m["measured"].items() if key != "real"
        for metric in ("var", "fid_fm", "fid_dfm", "snd") if isinstance(row.get(metric), float)]


def tsne_sets(real: Sequence[MeasuredClip], diffusion: RenderedSet, ar: RenderedSet, space: MotionSpace
              ) -> dict[str, dict[str, np.ndarray]]:
    """Measured pose and expression per frame of the real, diffusion and AR sets (rows with a face only)."""
    def rows(measured: Sequence[MeasuredClip], part: str) -> np.ndarray:
        x = np.concatenate([c.pose() if part == "pose" else c.expression for c in measured])
        return x[np.isfinite(x).all(axis=1)]

    parts = [p for p, ok in (("pose", bool(space.pose_columns)), ("expression", space.use_expression)) if ok]
    return {p: {"real": rows(real, p), "diffusion": rows(diffusion.measured, p), "AR": rows(ar.measured, p)}
            for p in parts}
