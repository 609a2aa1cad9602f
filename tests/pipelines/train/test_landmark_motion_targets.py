"""``storage.landmark_motion``: a clip's landmark motion split into a rigid part (roll, scale, shift) and a
non-rigid part (shape change), each column standardised over the clip."""

from __future__ import annotations

import numpy as np
import pytest

from thpad.pipelines.train.landmark_motion import landmark_motion, landmark_motion_dim

T = 60


def base_face(rng: np.random.Generator) -> np.ndarray:
    """(68, 2) a random landmark layout around (112, 112)."""
    return 112 + 30 * rng.normal(size=(68, 2))


def moved(face: np.ndarray, roll_deg: np.ndarray, squeeze: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """(T, 68, 2): per frame, squeeze x about the centre by ``squeeze`` (a yaw-like shape change), rotate by
    ``roll_deg`` and shift."""
    centre = face.mean(axis=0)
    out = np.repeat((face - centre)[None], len(roll_deg), axis=0)  # (T, 68, 2)
    out[..., 0] *= 1 - squeeze[:, None]
    angle = np.radians(roll_deg)[:, None]  # (T, 1)
    x, y = out[..., 0].copy(), out[..., 1].copy()
    out[..., 0], out[..., 1] = np.cos(angle) * x - np.sin(angle) * y, np.sin(angle) * x + np.cos(angle) * y
    return out + centre + shift[:, None, :]


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def test_roll_goes_to_the_rigid_part_and_a_squeeze_to_the_shape() -> None:
    rng = np.random.default_rng(0)
    face, t = base_face(rng), np.linspace(0, 4 * np.pi, T)
    roll, squeeze = 4 * np.sin(t), 0.03 * np.sin(1.7 * t + 1)  # (T,), (T,) uncorrelated paths
    out = landmark_motion(moved(face, roll, squeeze, np.zeros((T, 2))), 17, 48, 0.25)
    assert out.shape == (T, landmark_motion_dim(17, 48)) == (T, 66) and out.dtype == np.float32
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-5)  # centred on the clip
    assert corr(out[:, 0], roll) > 0.99  # column 0: roll in degrees
    shape_x = out[:, 4:4 + 31]  # (T, 31) the non-rigid x of points 17..47
    best = max(abs(corr(col, squeeze)) for col in shape_x.T)
    assert best > 0.95 and abs(corr(out[:, 0], squeeze)) < 0.2


def test_still_clip_is_all_zero_and_shift_is_rigid() -> None:
    rng = np.random.default_rng(1)
    face = base_face(rng)
    still = landmark_motion(np.repeat(face[None], T, axis=0), 0, 68, 0.25)
    np.testing.assert_allclose(still, 0, atol=1e-4)  # the floor keeps a still column at 0, not NaN
    shift = np.stack([np.linspace(-3, 3, T), np.zeros(T)], axis=1)  # (T, 2) a pan to the right
    out = landmark_motion(moved(face, np.zeros(T), np.zeros(T), shift), 0, 68, 0.25)
    assert corr(out[:, 2], shift[:, 0]) > 0.99
    assert np.abs(out[:, 4:]).max() < 1e-3  # no shape change


def test_bad_point_ranges_are_refused() -> None:
    lmk = np.zeros((T, 68, 2))
    for first, end in ((5, 5), (10, 11), (-1, 20), (40, 69)):
        with pytest.raises(ValueError, match="not a range"):
            landmark_motion(lmk, first, end, 0.25)
    with pytest.raises(ValueError, match="no extent"):
        landmark_motion(lmk, 17, 48, 0.25)
