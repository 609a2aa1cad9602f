"""Eye closure read from the pixels (storage/eye_closure.py), on drawn eyes: open ones show white and a dark
iris inside dlib's outline, closed ones the lid's even skin."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from thpad.pipelines.train.eye_closure import EYE_OUTLINES, eye_closure, eye_spread, eye_spreads

SIZE = 112
SKIN = 150


def eye_outline(cx: float, cy: float) -> np.ndarray:
    """Six points in dlib's order (outer corner, two upper-lid points, inner corner, two lower-lid points)."""
    return np.array([[cx - 12, cy], [cx - 4, cy - 5], [cx + 4, cy - 5], [cx + 12, cy], [cx + 4, cy + 5],
                     [cx - 4, cy + 5]], np.float32)  # (6, 2)


def landmarks() -> np.ndarray:
    """(68, 2): the two eyes at fixed places, every other point at the centre."""
    lmk = np.full((68, 2), SIZE / 2, np.float32)
    for points, cx in zip(EYE_OUTLINES, (35.0, 77.0), strict=True):
        lmk[list(points)] = eye_outline(cx, 45.0)
    return lmk


def frame(closed: bool, rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """A skin-grey frame with both eyes drawn open (white, dark iris) or closed (skin, a dark lash line)."""
    image = np.full((SIZE, SIZE, 3), SKIN, np.float32)
    lmk = landmarks()
    for points in EYE_OUTLINES:
        outline = np.round(lmk[list(points)]).astype(np.int32)  # (6, 2)
        if closed:
            cv2.polylines(image, [outline[[0, 5, 4, 3]]], False, (60, 60, 60), 1)
        else:
            cv2.fillPoly(image, [outline], (230, 230, 230))
            centre = outline.mean(axis=0).round().astype(int)
            cv2.circle(image, (int(centre[0]), int(centre[1])), 4, (40, 40, 40), -1)
    image = SKIN + gain * (image - SKIN) + rng.normal(0, 2.0, image.shape)  # gain: a contrast change
    return image.clip(0, 255).astype(np.uint8)  # (S, S, 3)


def clip(closed_frames: set[int], num_frames: int = 30, gains: dict[int, float] | None = None) -> np.ndarray:
    rng = np.random.default_rng(0)
    gains = gains or {}
    return np.stack([frame(t in closed_frames, rng, gains.get(t, 1.0)) for t in range(num_frames)])  # (T, S, S, 3)


def test_closed_eyes_stand_out_and_open_eyes_read_zero() -> None:
    closed = {7, 8, 20}
    frames = clip(closed)
    lmk = np.repeat(landmarks()[None], len(frames), axis=0)  # (T, 68, 2)
    closure = eye_closure(frames, lmk)
    assert closure.shape == (len(frames),) and closure.dtype == np.float32 and (closure >= 0).all()
    open_values = np.delete(closure, sorted(closed))
    assert closure[sorted(closed)].min() > 10 * max(open_values.max(), 1.0)
    assert np.median(open_values) == 0.0  # one-sided: half the open frames sit above the median and read 0


def test_more_contrast_is_not_closure() -> None:
    """A frame whose eyes show more contrast (light, not a lid) has a larger spread, which is not counted."""
    frames = clip({5}, gains={12: 1.5, 13: 1.5})
    lmk = np.repeat(landmarks()[None], len(frames), axis=0)
    spreads = eye_spreads(frames, lmk)  # (T, 2)
    assert (spreads[12] > spreads[0] * 1.3).all()
    closure = eye_closure(frames, lmk)
    assert closure[12] == closure[13] == 0.0 and closure[5] > 1.0


def test_spread_of_an_outline_outside_the_image_is_zero() -> None:
    grey = np.zeros((SIZE, SIZE), np.float32)
    assert eye_spread(grey, eye_outline(-50.0, -50.0)) == 0.0


def test_frames_and_landmarks_must_match() -> None:
    with pytest.raises(ValueError, match="3 frames but 2 landmark rows"):
        eye_closure(clip(set(), num_frames=3), np.repeat(landmarks()[None], 2, axis=0))
