"""The measured space: what the network-independent face measurer (``metrics.face_measure``) reads off frames, its
validation against the sample corpus's truth, and the per-frame motion vectors the measured-space metrics compare.

A motion vector is the head pose angles that passed validation (degrees) followed by the expression residual's PCA
coordinates (fitted on real train frames), each column divided by its standard deviation over the real evaluated
frames, so that no column dominates a Fréchet distance by its units. Frames where no face was measured are NaN rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from thpad.pipelines.evaluate.clips import EvalClip
from thpad.pipelines.metrics.face_measure import ExpressionPCA, FaceMeasurer, Measures, expression, factor_r, mean_shape

POSE = ("yaw", "pitch", "roll")
EXPRESSION_TRUTH = ("brow", "mouth")  # what the expression code is validated against (its multiple correlation)


@dataclass(frozen=True, eq=False)
class MeasuredClip:
    """The measurer's reading of one clip's frames: its ``Measures`` and expression coordinates (T, k), NaN rows
    where no face was measured."""

    measures: Measures
    expression: np.ndarray

    def pose(self) -> np.ndarray:
        """(T, 3) yaw, pitch, roll in degrees."""
        return np.stack([self.measures.yaw, self.measures.pitch, self.measures.roll], axis=1)


class Measurer:
    """The face measurer with an expression PCA fitted on real frames; build once per evaluation."""

    def __init__(self, train_frames: Sequence[np.ndarray], components: int, measurer: FaceMeasurer | None = None):
        self.face = measurer if measurer is not None else FaceMeasurer()
        lmk = np.concatenate([self._landmarks(f) for f in train_frames])  # (n, 68, 2)
        if len(lmk) < components + 1:
            raise ValueError(f"the expression PCA needs more than {components} measured train frames, got {len(lmk)}")
        self.reference = mean_shape(lmk)  # (68, 2)
        self.pca = ExpressionPCA.fit(expression(lmk, self.reference), components)

    def _landmarks(self, frames: np.ndarray) -> np.ndarray:
        m = self.face.measure(frames)
        return m.landmarks[m.detected].astype(np.float64)  # (n, 68, 2)

    def measure(self, frames: np.ndarray) -> MeasuredClip:
        """Measure (T, S, S, 3) uint8 aligned frames."""
        m = self.face.measure(frames)
        coords = np.full((len(frames), len(self.pca.variances)), np.nan)  # (T, k)
        if m.detected.any():
            coords[m.detected] = self.pca.transform(expression(m.landmarks[m.detected].astype(np.float64),
                                                               self.reference))
        return MeasuredClip(m, coords)


def centred(x: np.ndarray) -> np.ndarray:
    """``x`` (T, ...) minus its mean over its finite frames (a clip without any stays NaN)."""
    x = np.asarray(x, np.float64)
    if not np.isfinite(x).any():
        return x
    return x - np.nanmean(x, axis=0)


def multiple_r(x: np.ndarray, y: np.ndarray) -> float:
    """The multiple correlation of y (n,) with the columns of x (n, k): r of y with its least-squares fit."""
    design = np.column_stack([x, np.ones(len(x))])  # (n, k + 1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fit = design @ coef  # (n,)
    if fit.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(fit, y)[0, 1])


def validate(real: Sequence[MeasuredClip], clips: Sequence[EvalClip], min_r: float) -> dict[str, dict]:
    """The validation gate on the real evaluated frames (issue 21): per factor of the corpus's truth, the Pearson r
    of the measured factor against it, and for ``expression`` the mean multiple correlation of the expression
    coordinates with the truth's brow and mouth. Both sides are centred per clip first (``centred``), then pooled:
    the measurer reads a face's neutral pose and mouth with an offset of its own (a mean 3-D face fits no one
    exactly), which says nothing about how well it follows the motion.

    Returns:
        factor -> {"r", "available", "reason"} for yaw, pitch, roll, blink, mouth and expression; every factor is
        unavailable when no clip carries truth (a real corpus: the measurer can only be validated on the sample
        corpus).
    """
    names = (*POSE, "blink", "mouth", "expression")
    with_truth = [i for i, c in enumerate(clips) if c.truth is not None]
    if not with_truth:
        reason = "no clip carries motion truth to validate the measurer on (only the sample corpus has it)"
        return {n: {"r": float("nan"), "available": False, "reason": reason} for n in names}
    status = {}
    for name in names[:-1]:
        measured = np.concatenate([centred(real[i].measures.factors()[name]) for i in with_truth])
        truth = np.concatenate([centred(clips[i].truth[name]) for i in with_truth])
        r, reason = factor_r(measured, truth, min_r)
        status[name] = _status(r, min_r, reason)
    status["expression"] = _expression_status(real, clips, with_truth, min_r)
    return status


def _status(r: float, min_r: float, reason: str) -> dict:
    ok = bool(np.isfinite(r) and r >= min_r)
    return {"r": float(r), "available": ok, "reason": "" if ok else reason}


def _expression_status(real: Sequence[MeasuredClip], clips: Sequence[EvalClip], with_truth: list[int],
                       min_r: float) -> dict:
    x = np.concatenate([centred(real[i].expression) for i in with_truth])  # (n, k)
    rs = []
    for name in EXPRESSION_TRUTH:
        y = np.concatenate([centred(clips[i].truth[name]) for i in with_truth])
        keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
        rs.append(multiple_r(x[keep], y[keep]) if keep.sum() > x.shape[1] + 2 else float("nan"))
    r = float(np.mean(rs))
    return _status(r, min_r, f"measurer r {r:.2f} < {min_r:g} on real frames (expression vs brow and mouth)")


class MotionSpace:
    """Per-frame measured motion vectors (see the module docstring): the validated pose angles and, if validated,
    the expression coordinates, scaled by the real frames' standard deviations."""

    def __init__(self, real: Sequence[MeasuredClip], status: Mapping[str, Mapping]) -> None:
        self.pose_columns = [i for i, n in enumerate(POSE) if status[n]["available"]]
        self.use_expression = bool(status["expression"]["available"])
        self.expression_dim = real[0].expression.shape[1] if real else 0
        raw = np.concatenate([self._raw(c) for c in real]) if self.available else np.zeros((0, 1))
        finite = raw[np.isfinite(raw).all(axis=1)]
        self.scale = finite.std(axis=0) if len(finite) > 1 else np.ones(raw.shape[1])  # (d,)
        self.scale[self.scale == 0] = 1.0

    @property
    def available(self) -> bool:
        return bool(self.pose_columns or self.use_expression)

    @property
    def columns(self) -> list[str]:
        """The names of the vectors' columns."""
        expr = [f"expression_pc{i}" for i in range(self.expression_dim)] if self.use_expression else []
        return [POSE[i] for i in self.pose_columns] + expr

    def _raw(self, clip: MeasuredClip) -> np.ndarray:
        parts = [clip.pose()[:, self.pose_columns]] + ([clip.expression] if self.use_expression else [])
        return np.concatenate(parts, axis=1)  # (T, d)

    def vectors(self, clip: MeasuredClip) -> np.ndarray:
        """(T, d) motion vectors of a measured clip (NaN rows where no face)."""
        return self._raw(clip) / self.scale


def finite_sequences(seqs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each (T, d) sequence cut into its runs of finite rows, runs of at least 2 rows kept (so that velocities never
    span a frame without a face)."""
    out = []
    for seq in seqs:
        ok = np.isfinite(seq).all(axis=1)  # (T,)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))  # run starts and ends
        out += [seq[a:b] for a, b in zip(edges[::2], edges[1::2], strict=True) if b - a >= 2]
    return out
