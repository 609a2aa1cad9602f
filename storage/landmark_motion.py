"""How a clip's face moves, read from its landmarks: per frame, the rigid motion (roll, scale, shift) and the
non-rigid rest (what yaw, pitch, blinks and brows do to the face's shape), both relative to the clip's mean face.

``train_disentangle`` can ask f_nl to predict these (``pipelines/train/landmark_motion.py``). The landmarks are
the aligned frame's 68 dlib/FAN points the shards already hold; nothing here reads the sample corpus's truth.

Each frame's points are matched to the clip's mean shape by a least-squares similarity (2-D Procrustes, in
complex numbers: z ≈ a·m + b). The rigid part is (angle of a in degrees, 100·log|a|, Re b, Im b); the non-rigid
part is the frame's points mapped back by the inverse similarity, minus the mean shape. Every column is then
centred on the clip and divided by its standard deviation over the clip plus a floor, so a nearly still
coordinate (dlib's jitter) is not blown up to unit variance.
"""

from __future__ import annotations

import numpy as np

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
