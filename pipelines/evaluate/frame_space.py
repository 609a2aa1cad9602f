"""The protocols on rendered frames, measured by the network-independent face measurer (``evaluate.measured``) and
dlib's face descriptor (``metrics.identity``).

- reconstruction: f_nl from E_v of the real frames, f_l from the audio, the identity from frame 0; compared frame by
  frame with the real clip (image similarity, mouth landmarks, measured pose against the corpus's truth), beside the
  copy-the-photo baseline; and the two disentanglement views (non-lip or lip code zeroed, supplement §I.5).
- generation: f_nl sampled by a prior; the measured motion's distribution against the real frames' (Table I in the
  measured space), lip sync against the audio, audio-tied head motion, smoothness and identity.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thpad import landmarks as G
from thpad.models.generation import render
from thpad.pipelines.evaluate.clips import EvalClip
from thpad.pipelines.evaluate.measured import POSE, MeasuredClip, Measurer, MotionSpace, centred, finite_sequences
from thpad.pipelines.evaluate.summary import clean, guarded, seeds_summary, unavailable
from thpad.pipelines.generate.model import TalkingHeadModel
from thpad.pipelines.generate.tensors import to_uint8
from thpad.pipelines.metrics.face_measure import interocular
from thpad.pipelines.metrics.identity import IdentityEncoder, identity_metrics
from thpad.pipelines.metrics.motion import speed_correlation
from thpad.pipelines.metrics.probe import pearson
from thpad.pipelines.metrics.sets import energy_envelope, l1, psnr, smoothness, ssim, sync_offset, table1_row

MOUTH = list(range(48, 68))
EYES = list(G.EYE_RIGHT + G.EYE_LEFT)


@dataclass(frozen=True, eq=False)
class RenderedSet:
    """One way of rendering every evaluated clip: the measured clips and, for ``keep`` clips, the frames."""

    name: str
    measured: list[MeasuredClip]
    frames: list[np.ndarray]  # (T, S, S, 3) uint8 of the first ``keep`` clips


def render_frames(model: TalkingHeadModel, clip: EvalClip, f_nl: np.ndarray, f_l: np.ndarray) -> np.ndarray:
    """(T, S, S, 3) uint8 frames of one clip rendered from the given codes."""
    return to_uint8(render(model.head, clip.identity, np.ascontiguousarray(f_nl, np.float32),
                           np.ascontiguousarray(f_l, np.float32)))


def render_set(model: TalkingHeadModel, measurer: Measurer, clips: Sequence[EvalClip], name: str,
               codes: Sequence[tuple[np.ndarray, np.ndarray]], keep: int,
               observe: Callable[[int, np.ndarray], None] | None = None) -> RenderedSet:
    """Render and measure every clip with its (f_nl, f_l), one clip at a time; the frames of the first ``keep``
    clips are kept, and ``observe(i, frames)`` sees every clip's frames (e.g. to compare them with the real ones)."""
    measured, kept = [], []
    for i, (clip, (f_nl, f_l)) in enumerate(zip(clips, codes, strict=True)):
        frames = render_frames(model, clip, f_nl, f_l)
        measured.append(measurer.measure(frames))
        if i < keep:
            kept.append(frames)
        if observe is not None:
            observe(i, frames)
    return RenderedSet(name, measured, kept)


def truth_r(measured: Sequence[np.ndarray], clips: Sequence[EvalClip], factor: str) -> float | str:
    """Pearson r, centred per clip and pooled, of a measured factor on rendered frames against the corpus's truth."""
    with_truth = [i for i, c in enumerate(clips) if c.truth is not None]
    if not with_truth:
        return unavailable("no motion truth in these clips (only the sample corpus has it)")
    a = np.concatenate([centred(measured[i]) for i in with_truth])
    b = np.concatenate([centred(clips[i].truth[factor]) for i in with_truth])
    keep = np.isfinite(a) & np.isfinite(b)
    return clean(pearson(a[keep], b[keep])) if keep.sum() >= 3 else unavailable("fewer than 3 measured frames")


def factor_series(rendered: Sequence[MeasuredClip], factor: str) -> list[np.ndarray]:
    return [m.measures.factors()[factor] for m in rendered]


def landmark_distance(rendered: Sequence[MeasuredClip], real: Sequence[MeasuredClip], points: list[int]) -> float:
    """Mean distance of the given landmarks, rendered against real, in real inter-ocular distances, over every frame
    where both were measured (NaN when there is none)."""
    per_frame = []
    for r, t in zip(rendered, real, strict=True):
        ok = r.measures.detected & t.measures.detected  # (T,)
        lr, lt = r.measures.landmarks[ok][:, points], t.measures.landmarks[ok][:, points]  # (F, K, 2) each
        dist = np.linalg.norm(lr.astype(np.float64) - lt, axis=2).mean(axis=1)  # (F,)
        per_frame.append(dist / interocular(t.measures.landmarks[ok].astype(np.float64)))
    pooled = np.concatenate(per_frame)
    return float(pooled.mean()) if pooled.size else float("nan")


class ImageComparison:
    """Image similarity of rendered clips against the real ones and of the copy-the-photo baseline, accumulated clip
    by clip (``observe`` of ``render_set``), so that no set of frames is held whole."""

    def __init__(self, clips: Sequence[EvalClip]) -> None:
        self.clips = clips
        self.sums = {"model": np.zeros(3), "copy_photo": np.zeros(3)}
        self.frames = 0

    def observe(self, i: int, frames: np.ndarray) -> None:
        real = self.clips[i].frames
        copy = np.repeat(real[:1], len(real), axis=0)
        for name, gen in (("model", frames), ("copy_photo", copy)):
            self.sums[name] += len(real) * np.array([l1(gen, real) / 127.5, psnr(gen, real), ssim(gen, real)])
        self.frames += len(real)

    def result(self, name: str) -> dict[str, float | None]:
        """{"l1" (in [-1, 1] image units, as training's ``val.recon_l1``), "psnr" (dB), "ssim"} averaged per frame."""
        return {k: clean(v / self.frames) for k, v in zip(("l1", "psnr", "ssim"), self.sums[name], strict=True)}


def reconstruction(images: ImageComparison, recon: Sequence[MeasuredClip], real: Sequence[MeasuredClip],
                   clips: Sequence[EvalClip], status: Mapping[str, Mapping]) -> dict[str, Any]:
    """``reconstruction.*`` (image similarity, mouth LMD, the copy-the-photo baseline), ``reenactment.*`` and
    ``lip.mouth_open_r`` (the measured mouth opening of the reconstruction, lips from the audio, against the truth)."""
    out = {"reconstruction": {**images.result("model"),
                              "lmd": guarded(status["mouth"], lambda: clean(landmark_distance(recon, real, MOUTH))),
                              "copy_photo": images.result("copy_photo")}}
    pose_r = {f: guarded(status[f], lambda f=f: truth_r(factor_series(recon, f), clips, f)) for f in POSE}
    out["reenactment"] = {"pose_r": pose_r,
                          "blink_r": guarded(status["blink"], lambda: truth_r(factor_series(recon, "blink"), clips,
                                                                             "blink"))}
    out["lip"] = {"mouth_open_r": guarded(status["mouth"], lambda: truth_r(factor_series(recon, "mouth"), clips,
                                                                          "mouth"))}
    return out


def disentanglement(nl_zero: Sequence[MeasuredClip], lip_zero: Sequence[MeasuredClip], real: Sequence[MeasuredClip],
                    clips: Sequence[EvalClip], status: Mapping[str, Mapping]) -> dict[str, Any]:
    """Supplement §I.5 under reconstruction: with the non-lip code zeroed, the lips must still follow the audio
    (mouth LMD, mouth-opening r); with the lip code zeroed, the eyes, pose and expression must still follow the real
    clip (B_d: eye-landmark NME, P_d: L2 of measured pose in degrees, E_d: L2 of the expression coordinates)."""
    def l2(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
        d = np.concatenate([np.linalg.norm(x - y, axis=1) for x, y in zip(a, b, strict=True)])
        return clean(np.nanmean(d)) if np.isfinite(d).any() else None

    pose_ok = all(status[f]["available"] for f in POSE)
    return {
        "nonlip_zero": {
            "lmd": guarded(status["mouth"], lambda: clean(landmark_distance(nl_zero, real, MOUTH))),
            "mouth_open_r": guarded(status["mouth"], lambda: truth_r(factor_series(nl_zero, "mouth"), clips, "mouth")),
        },
        "lip_zero": {
            "b_d": clean(landmark_distance(lip_zero, real, EYES)),
            "p_d": l2([m.pose() for m in lip_zero], [m.pose() for m in real]) if pose_ok
            else unavailable("a pose factor failed the measurer's validation"),
            "e_d": guarded(status["expression"], lambda: l2([m.expression for m in lip_zero],
                                                            [m.expression for m in real])),
        },
    }


def filled(x: np.ndarray) -> np.ndarray:
    """(T, d) with NaN rows filled by linear interpolation over time (edges held); all-NaN stays NaN."""
    out = np.array(x, np.float64)
    t = np.arange(len(out))
    for j in range(out.shape[1]):
        ok = np.isfinite(out[:, j])
        if ok.any() and not ok.all():
            out[:, j] = np.interp(t, t[ok], out[ok, j])
    return out


def envelopes(clips: Sequence[EvalClip], sample_rate: int, fps: int) -> list[np.ndarray]:
    """The audio's per-frame energy envelope of each clip (T,)."""
    return [energy_envelope(c.audio, sample_rate, fps, c.num_frames) for c in clips]


def lip_sync(mouth: Sequence[np.ndarray], env: Sequence[np.ndarray], max_shift: int) -> dict[str, Any]:
    """The mouth opening against the audio's energy envelope, pooled over clips: the best offset (frames; positive:
    the mouth lags the sound) and r there."""
    a = np.concatenate([centred(e) for e in env])
    b = np.concatenate([centred(filled(m[:, None])[:, 0]) for m in mouth])
    if not np.isfinite(b).all():
        return {"offset": None, "r": None}
    shift, r = sync_offset(a, b, max_shift)
    return {"offset": int(shift), "r": clean(r)}


def motion_set(measured: Sequence[MeasuredClip], real: Sequence[MeasuredClip], space: MotionSpace,
               env: Sequence[np.ndarray], clips: Sequence[EvalClip], status: Mapping[str, Mapping],
               max_shift: int) -> dict[str, Any]:
    """Per-run figures of a generated set (one seed): Table I row in the measured space, pose smoothness, audio-tied
    head speed, lip sync and the generated mouth opening against the truth."""
    row: dict[str, Any] = {}
    if space.available:
        gen = finite_sequences([space.vectors(m) for m in measured])
        ref = finite_sequences([space.vectors(m) for m in real])
        row |= table1_row(gen, ref)
    pose_ok = all(status[f]["available"] for f in POSE)
    if pose_ok:
        g_pose = finite_sequences([m.pose() for m in measured])
        r_pose = finite_sequences([m.pose() for m in real])
        row["pose_smoothness_ratio"] = smoothness(g_pose) / smoothness(r_pose)
        row["head_speed_audio_r"] = speed_correlation([filled(m.pose()) for m in measured], env)
    if status["mouth"]["available"]:
        sync = lip_sync(factor_series(measured, "mouth"), env, max_shift)
        row["lip_offset"], row["lip_r"] = sync["offset"], sync["r"]
        mouth_r = truth_r(factor_series(measured, "mouth"), clips, "mouth")
        if isinstance(mouth_r, float):
            row["mouth_open_r"] = mouth_r
    row["face_found_share"] = float(np.mean(np.concatenate([m.measures.detected for m in measured])))
    return row


RUN_METRICS = ("var", "fid_fm", "fid_dfm", "snd", "pose_smoothness_ratio", "head_speed_audio_r", "lip_offset",
               "lip_r", "mouth_open_r", "face_found_share")


def summarise_runs(rows: Sequence[Mapping[str, Any]], status: Mapping[str, Mapping], space: MotionSpace
                   ) -> dict[str, Any]:
    """Mean and CI over seeds of each run figure; a figure whose measured factor failed is ``unavailable``."""
    present = [k for k in RUN_METRICS if all(k in r for r in rows)]
    cleaned = [{k: (v if isinstance(v, int | float) and v is not None else float("nan")) for k, v in r.items()}
               for r in rows]
    out = seeds_summary(cleaned, present)
    reasons = {"table1": "no measured factor passed validation" if not space.available else "",
               "pose": "" if all(status[f]["available"] for f in POSE) else "a pose factor failed validation",
               "mouth": status["mouth"]["reason"] or "no motion truth in these clips"}
    missing = {"var": "table1", "fid_fm": "table1", "fid_dfm": "table1", "snd": "table1",
               "pose_smoothness_ratio": "pose", "head_speed_audio_r": "pose", "lip_offset": "mouth", "lip_r": "mouth",
               "mouth_open_r": "mouth"}
    for k, why in missing.items():
        if k not in present:
            out[k] = unavailable(reasons[why])
    return out


class IdentityProbe:
    """dlib identity of rendered frames (``per_clip`` evenly spaced per clip, 0: all) against each clip's source
    photo (its frame 0 at the model's size), accumulated clip by clip (``observe`` of ``render_set``)."""

    def __init__(self, encoder: IdentityEncoder, clips: Sequence[EvalClip], per_clip: int) -> None:
        self.encoder, self.clips, self.per_clip = encoder, clips, per_clip
        self.distances: list[np.ndarray] = []  # per clip (F,) distances of the found frames
        self.split_counts: dict[str, np.ndarray] = {}  # split -> frames, found, same person

    def observe(self, i: int, frames: np.ndarray) -> None:
        n = len(frames)
        idx = np.arange(n) if not self.per_clip else np.unique(np.linspace(0, n - 1, self.per_clip).round().astype(int))
        source, source_found = self.encoder.descriptors(self.clips[i].frames[:1])
        descs, found = self.encoder.descriptors(frames[idx])
        if not source_found[0]:
            found = np.zeros_like(found)  # no face in the source photo: nothing can be compared
        found_metrics = identity_metrics(source[0], descs, found)
        counts = np.array([len(idx), found.sum(), round(found_metrics["same_person_share"] * len(idx))])
        split = self.clips[i].split
        self.split_counts[split] = self.split_counts.get(split, np.zeros(3)) + counts
        self.distances.append(np.linalg.norm(descs[found] - source[0], axis=1))

    def result(self) -> dict[str, float | str | int]:
        """{"same_person_share": frames under dlib's 0.6 over all probed frames (no face: a failure),
        "dlib_distance": the mean distance over the frames with a face (unavailable without any),
        "face_found_share", "frames", "by_split": {split: {"same_person_share", "frames"}}} (the test split's
        portraits were never trained on)."""
        frames, found, same = sum(self.split_counts.values(), np.zeros(3))
        pooled = np.concatenate(self.distances) if self.distances else np.zeros(0)
        if not frames:
            return {k: unavailable("no frame was probed") for k in ("same_person_share", "dlib_distance",
                                                                     "face_found_share")} | {"frames": 0}
        distance = clean(pooled.mean()) if pooled.size else unavailable(
            "dlib found no face in any probed frame (same_person_share counts them as failures)")
        by_split = {split: {"same_person_share": clean(c[2] / c[0]), "frames": int(c[0])}
                    for split, c in sorted(self.split_counts.items()) if c[0]}
        return {"same_person_share": clean(same / frames), "dlib_distance": distance,
                "face_found_share": clean(found / frames), "frames": int(frames), "by_split": by_split}


def real_reference(real: Sequence[MeasuredClip], env: Sequence[np.ndarray], status: Mapping[str, Mapping],
                   max_shift: int) -> dict[str, Any]:
    """The real clips' own audio-tied head speed and lip sync: what a generated set should approach."""
    out: dict[str, Any] = {}
    if all(status[f]["available"] for f in POSE):
        out["head_speed_audio_r"] = clean(speed_correlation([filled(m.pose()) for m in real], env))
    if status["mouth"]["available"]:
        sync = lip_sync(factor_series(real, "mouth"), env, max_shift)
        out["lip_offset"], out["lip_r"] = sync["offset"], sync["r"]
    return out


def timeline_of(measured: MeasuredClip) -> np.ndarray:
    """(T, 4) yaw, pitch, roll (degrees) and eye closure (-EAR) of one measured clip, for the timeline figure."""
    f = measured.measures.factors()
    return np.stack([f["yaw"], f["pitch"], f["roll"], f["blink"]], axis=1)
