"""L_lmk, our stand-in for the paper's pretrained E_v: f_nl predicts how the driving frame's face moves.

The paper's E_v is a MobileNetV2 pretrained as in LPD, so its f_nl carries head pose from the start. Without
those weights, E_v's backbone trains in stage 2 from reconstruction alone, and on a CPU budget the generator
learns too slowly to ask f_nl for anything (docs/training-notes.md). L_lmk gives f_nl a direct signal: a
linear head on f_nl regresses the frame's rigid and non-rigid landmark motion relative to its clip
(``landmark_motion`` below), from the brows, nose and eyes by default (the mouth and jaw move with speech,
which is f_l's job). Its weight is ``loss.weights.lmk``: 10 in the embedded default, with E_v pretrained on
it first, and 0 (off) in the paper profile (docs/training-notes.md). The head trains with E_v in phase one and is
not part of the talking-head snapshot.

dlib's lid points hardly follow a blink, so with ``closure_weight`` > 0 the target gains one column read from the
pixels, ``eye_closure`` (how closed the eyes look against the clip's usual open eyes), and the loss a
term for it (docs/training-notes.md).

The targets: how a clip's face moves, read from its landmarks. Per frame, the rigid motion (roll, scale, shift) and
the non-rigid rest (what yaw, pitch, blinks and brows do to the face's shape), both relative to the clip's mean
face. The landmarks are the aligned frame's 68 dlib/FAN points the shards already hold; nothing here reads the
sample corpus's truth.

Each frame's points are matched to the clip's mean shape by a least-squares similarity (2-D Procrustes, in
complex numbers: z ≈ a·m + b). The rigid part is (angle of a in degrees, 100·log|a|, Re b, Im b); the non-rigid
part is the frame's points mapped back by the inverse similarity, minus the mean shape. Every column is then
centred on the clip and divided by its standard deviation over the clip plus a floor, so a nearly still
coordinate (dlib's jitter) is not blown up to unit variance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from thpad.storage.shards import NUM_LANDMARKS

RIGID_COLUMNS = ("roll_deg", "log_scale_x100", "shift_x", "shift_y")


class DegenerateLandmarksError(ValueError):
    """A clip's landmarks have no shape to move (its mean shape is a single point)."""


def landmark_motion_dim(first: int, end: int) -> int:
    """Columns of ``landmark_motion`` for points ``first`` to ``end - 1``: 4 rigid + x and y per point."""
    return len(RIGID_COLUMNS) + 2 * (end - first)


def landmark_motion(landmarks: np.ndarray, first: int, end: int, min_std: float) -> np.ndarray:
    """The standardised rigid and non-rigid motion of points ``first:end`` over a clip.

    Args:
        landmarks: (T, 68, 2) pixel (x, y) per frame.
        first, end: the points used (17, 48: brows, nose and eyes; the mouth and jaw move with speech).
        min_std: floor added to each column's standard deviation before dividing.
    Returns:
        (T, 4 + 2P) float32: roll, log scale, shift x, shift y, then the P non-rigid x and the P non-rigid y.
    Raises:
        ValueError: a bad point range; DegenerateLandmarksError (a ValueError): a clip whose mean shape is one point.
    """
    if not 0 <= first < end <= landmarks.shape[1] or end - first < 2:
        raise ValueError(f"landmark points {first}:{end} are not a range of at least 2 of {landmarks.shape[1]}")
    pts = np.asarray(landmarks[:, first:end], np.float64)  # (T, P, 2)
    z = pts[..., 0] + 1j * pts[..., 1]  # (T, P)
    mean = z.mean(axis=0)  # (P,) the clip's mean shape
    mean_c = mean - mean.mean()  # (P,)
    norm = float((np.abs(mean_c) ** 2).sum())
    if norm <= 0:
        raise DegenerateLandmarksError("the clip's mean landmark shape has no extent")
    a = ((z - z.mean(axis=1, keepdims=True)) * np.conj(mean_c)).sum(axis=1) / norm  # (T,) rotation and scale
    a = np.where(np.abs(a) > 1e-6, a, 1.0)  # a degenerate frame (all points equal) stays unrotated
    b = z.mean(axis=1) - a * mean.mean()  # (T,) shift
    rest = (z - b[:, None]) / a[:, None] - mean  # (T, P) shape change in the mean face's frame
    rigid = np.stack([np.degrees(np.angle(a)), 100 * np.log(np.abs(a)), b.real, b.imag], axis=1)  # (T, 4)
    out = np.concatenate([rigid, rest.real, rest.imag], axis=1)  # (T, 4 + 2P)
    out -= out.mean(axis=0)
    return (out / (out.std(axis=0) + min_std)).astype(np.float32)


@dataclass(frozen=True)
class LandmarkMotionParams:
    """The landmark points the targets read (``points``: first and end; 17 and 48 = brows, nose and eyes; 48 and
    68 = the mouth), the floor under each target column's standard deviation over a clip (``min_std``, in
    stored-frame pixels for the non-rigid and shift columns, degrees for roll), and E_v's pretraining on these
    targets alone before the stage's own losses start (``pretrain_samples`` at Adam rate ``pretrain_lr``; 0
    samples: none), the counterpart of the paper's pretrained E_v. The pretraining runs on a fresh start only
    and is not on the stage's sample clock. ``rigid_weight`` weighs each of the 4 rigid columns (roll, scale,
    shift) against each non-rigid one in the loss's weighted mean: with 1, roll is one column of 66 for points
    17 to 48, and a tiny E_v learns whichever motion is largest first (docs/training-notes.md). ``closure_weight`` > 0
    appends the eye-closure column (``eye_closure``, standardised per clip with ``closure_min_std`` under
    its std) and adds its squared error times ``closure_weight`` to the loss; 0: no such column.
    """

    points: tuple[int, int]
    min_std: float
    pretrain_samples: int
    pretrain_lr: float
    rigid_weight: float = 1.0
    closure_weight: float = 0.0
    closure_min_std: float = 0.05

    def __post_init__(self) -> None:
        first, end = self.points
        if not 0 <= first < end - 1 < NUM_LANDMARKS or self.min_std <= 0:
            raise ValueError(f"landmark_motion needs 0 <= points[0] < points[1] - 1 < {NUM_LANDMARKS} and "
                             f"min_std > 0, got {self}")
        if self.pretrain_samples < 0 or self.pretrain_lr < 0 or self.rigid_weight <= 0:
            raise ValueError(f"landmark_motion needs pretrain_samples >= 0, pretrain_lr >= 0 and rigid_weight > 0, "
                             f"got {self}")
        if self.closure_weight < 0 or self.closure_min_std <= 0:
            raise ValueError(f"landmark_motion needs closure_weight >= 0 and closure_min_std > 0, got {self}")

    @property
    def closure(self) -> bool:
        """Whether the target ends with the eye-closure column."""
        return self.closure_weight > 0

    @property
    def dim(self) -> int:
        """Width of the target (4 rigid columns + 2 per point, + 1 with the eye closure)."""
        return landmark_motion_dim(*self.points) + int(self.closure)


def landmark_head(nl_dim: int, params: LandmarkMotionParams) -> nn.Linear:
    """The linear head from f_nl to the landmark motion (freshly initialised from the torch seed)."""
    return nn.Linear(nl_dim, params.dim)


def column_weights(params: LandmarkMotionParams) -> torch.Tensor:
    """(L,) loss weight of each landmark column: ``rigid_weight`` for the rigid ones, then 1, scaled to mean 1."""
    weights = torch.ones(landmark_motion_dim(*params.points))  # (L,)
    weights[:len(RIGID_COLUMNS)] = params.rigid_weight
    return weights / weights.mean()


def landmark_motion_loss(head: nn.Module, f_nl: torch.Tensor, target: torch.Tensor,
                         params: LandmarkMotionParams) -> torch.Tensor:
    """L_lmk: the column-weighted mean squared error of the head's prediction from f_nl over the landmark columns
    (``column_weights``), plus ``closure_weight`` times the eye-closure column's mean squared error.

    Args:
        f_nl: (B, nl_dim) non-lip codes; target: (B, D) standardised landmark motion (and eye closure).
    Returns:
        scalar loss (about 1 + ``closure_weight`` for a prediction of 0: the targets have unit variance per clip).
    """
    error = (head(f_nl) - target).pow(2)  # (B, D)
    landmarks = landmark_motion_dim(*params.points)
    weights = column_weights(params).to(target.device, target.dtype)  # (L,)
    loss = (error[:, :landmarks] * weights).mean()
    return loss + params.closure_weight * error[:, landmarks:].mean() if params.closure else loss
