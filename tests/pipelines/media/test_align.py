"""PC-AVS alignment (docs/paper-notes.md §2.2) checked against the sample corpus's true landmarks."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from thpad.pipelines.media.align import (
    align_transforms,
    key_centres,
    similarity_lsq,
    smooth_translation,
    template_points,
    transform_points,
    warp_frames,
)
from thpad.pipelines.media.config import AlignConfig, TrackConfig
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.media.track import track_face
from thpad.pipelines.media.video import read_video

CFG = AlignConfig()
MOUTH_AND_CHIN = list(range(48, 68)) + list(range(5, 12))


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def clips(micro_corpus) -> list[dict]:
    """Per corpus clip: frames (T, 224, 224, 3), true landmarks (T, 68, 2) and the true mouth (T,)."""
    root, summary = micro_corpus
    out = []
    for rel in summary["clips"]:
        truth = json.loads((root / rel).with_suffix(".json").read_text())
        out.append({"frames": read_video(root / rel).frames, "truth": np.array(truth["landmarks"], np.float32),
                    "mouth": np.array(truth["motion"]["mouth"])})
    return out


def test_similarity_lsq_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (5, 2))
    angle, scale, shift = np.radians(17.0), 1.7, np.array([-30.0, 12.0])
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_lsq(src, src @ (scale * rot).T + shift)
    np.testing.assert_allclose(matrix, np.concatenate([scale * rot, shift[:, None]], axis=1), atol=1e-9)
    mirrored = similarity_lsq(src, src * [-1, 1])  # no reflection: the best rotation instead
    assert np.linalg.det(mirrored[:, :2]) > 0


def test_tracked_alignment_puts_the_true_centres_on_the_template(clips, landmarker) -> None:
    """Transforms from dlib-tracked landmarks put the clip-mean eye and mouth centres of the TRUE
    landmarks within a few px of (87, 59), (137, 59), (112, 120)."""
    for clip in clips:
        track = track_face(clip["frames"], landmarker, TrackConfig())
        xforms = align_transforms(track.landmarks, CFG)
        assert xforms.shape == (len(clip["frames"]), 2, 3) and xforms.dtype == np.float32
        centres = key_centres(transform_points(clip["truth"], xforms)).mean(axis=0)  # (3, 2)
        offsets = np.linalg.norm(centres - template_points(CFG), axis=1)
        assert offsets.max() < 5.0, f"centres {centres.round(1).tolist()} are off the template by {offsets}"


def test_translation_never_follows_the_mouth(clips) -> None:
    """Moving only the mouth and chin points (a zero-mean opening per frame) must not change any
    transform. Pinning the mouth centre, as PC-AVS does, would move every frame by the opening."""
    truth = clips[0]["truth"]
    opening = np.random.default_rng(0).uniform(-8, 8, len(truth))
    opening -= opening.mean()
    talking = truth.copy()
    talking[:, MOUTH_AND_CHIN, 1] += opening[:, None]
    for smoothing in ("ema", "gaussian", "none"):
        cfg = dataclasses.replace(CFG, smoothing=smoothing)
        np.testing.assert_allclose(align_transforms(talking, cfg), align_transforms(truth, cfg), atol=1e-3)
    with pytest.raises(ValueError, match="mouth"):
        AlignConfig(stable_points=(36, 45, 62))


def test_crop_keeps_lip_motion_and_pins_the_stable_points(clips) -> None:
    """In the crop the stable points stay put (< 0.5 px jitter) while the inner-mouth centre still
    moves with the true opening (about 3-6 px per unit; pinning the mouth would give a slope of 0)."""
    for clip in clips:
        aligned = transform_points(clip["truth"], align_transforms(clip["truth"], CFG))  # (T, 68, 2)
        stable = aligned[:, list(CFG.stable_points)].mean(axis=1)  # (T, 2)
        assert stable.std(axis=0).max() < 0.5
        mouth_y = key_centres(aligned)[:, 2, 1]
        slope = np.polyfit(clip["mouth"], mouth_y, 1)[0]
        assert slope > 2.0 and np.corrcoef(clip["mouth"], mouth_y)[0, 1] > 0.5


def test_smoothing() -> None:
    step = np.zeros((6, 2))
    step[2:] = 10.0
    ema = smooth_translation(step, CFG)
    np.testing.assert_allclose(ema[:, 0], [0, 0, 8, 9.6, 9.92, 9.984])  # 0.2 previous + 0.8 current
    gauss = smooth_translation(step, dataclasses.replace(CFG, smoothing="gaussian"))
    assert gauss[0, 0] < 1.0 and gauss[-1, 0] > 9.0 and np.all(np.diff(gauss[:, 0]) >= 0)
    np.testing.assert_array_equal(smooth_translation(step, dataclasses.replace(CFG, smoothing="none")), step)


def test_warp_agrees_with_transform_points_at_any_input_size(clips, landmarker) -> None:
    """dlib on the warped crops finds the landmarks where ``transform_points`` puts the truth, and a
    2x larger source gives the same crop (the transform does the resizing)."""
    clip = clips[0]
    frames, truth = clip["frames"][:3], clip["truth"][:3]
    xforms = align_transforms(clip["truth"], CFG)[:3]
    crops = warp_frames(frames, xforms, CFG.size)
    assert crops.shape == (3, 224, 224, 3) and crops.dtype == np.uint8
    expected = transform_points(truth, xforms)
    for crop, points in zip(crops, expected, strict=True):
        found = landmarker.detect(crop, 1)[0].landmarks
        assert np.linalg.norm(found - points, axis=1).mean() < 3.0
    big = np.stack([cv2.resize(f, (448, 448), interpolation=cv2.INTER_CUBIC) for f in frames])  # (3, 448, 448, 3)
    big_xforms = align_transforms(clip["truth"] * 2 + 0.5, CFG)[:3]  # pixel centres scale about (-0.5, -0.5)
    np.testing.assert_allclose(transform_points(truth * 2 + 0.5, big_xforms), expected, atol=1e-3)
    diff = np.abs(warp_frames(big, big_xforms, CFG.size).astype(int) - crops.astype(int))
    assert diff.mean() < 3.0
    by_cv2 = cv2.transform(truth[0][None].astype(np.float64), xforms[0].astype(np.float64))[0]
    np.testing.assert_allclose(expected[0], by_cv2, atol=1e-3)
