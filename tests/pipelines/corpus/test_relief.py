"""The depth relief of the sample corpus: flat is the plane's homography, relief shows yaw's sign as the nose
moving against the eyes, and the written landmarks follow what is rendered."""

from __future__ import annotations

import numpy as np
import pytest

from thpad.pipelines.corpus.config import MotionConfig, ReliefConfig
from thpad.pipelines.corpus.portraits import PORTRAITS, draw_variation, make_identity_image
from thpad.pipelines.corpus.relief import depth_map, forward
from thpad.pipelines.corpus.render import _rotation, build_rig, render_frame
from thpad.pipelines.media.faces import FaceLandmarker

REST = dict(mouth=0.0, blink=0.0, brow=0.0, gaze_x=0.0, gaze_y=0.0, yaw=0.0, pitch=0.0, roll=0.0,
            tx=0.0, ty=0.0, scale=1.0)
FOCAL = 2.5 * 224
RELIEF = ReliefConfig(face=0.45, nose=0.35)


@pytest.fixture(scope="module")
def face(micro_params) -> tuple[np.ndarray, np.ndarray, MotionConfig, FaceLandmarker]:
    landmarker = FaceLandmarker()
    image = make_identity_image(PORTRAITS[0], draw_variation(np.random.default_rng(0), 0), 224, landmarker)
    return image, landmarker.detect(image)[0].landmarks, micro_params.corpus.motion, landmarker


def nose_against_eyes(lmk: np.ndarray) -> float:
    """x of the nose tip minus the midpoint of the inner eye corners."""
    return float(lmk[30, 0] - (lmk[39, 0] + lmk[42, 0]) / 2)


def test_flat_relief_is_the_plane(face) -> None:
    image, lmk, motion, _ = face
    plane, flat = build_rig(image, lmk, motion), build_rig(image, lmk, motion, ReliefConfig())
    assert flat.depth is None
    state = REST | dict(yaw=10.0, roll=4.0, tx=3.0, scale=1.03)
    assert np.array_equal(render_frame(plane, state, FOCAL)[0], render_frame(flat, state, FOCAL)[0])
    # The relief's forward map with zero depth is the homography's map too.
    zero = forward(lmk.astype(np.float32), np.zeros(68, np.float32), lmk.mean(0), _rotation(10.0, 0.0, 4.0),
                   state, FOCAL)
    assert np.abs(zero - render_frame(plane, state, FOCAL)[1]).max() < 1e-2


def test_relief_shows_the_sign_of_yaw(face) -> None:
    image, lmk, motion, _ = face
    depth = depth_map(lmk, 224, RELIEF)  # (224, 224)
    assert depth[int(lmk[30, 1]), int(lmk[30, 0])] > depth[int(lmk[36, 1]), int(lmk[36, 0])] > 0
    assert depth[0, 0] < 1e-3  # the background stays on the plane
    swing = {}
    for name, rig in (("plane", build_rig(image, lmk, motion)), ("relief", build_rig(image, lmk, motion, RELIEF))):
        left, right = (render_frame(rig, REST | dict(yaw=y), FOCAL)[1] for y in (-12.0, 12.0))
        swing[name] = nose_against_eyes(left) - nose_against_eyes(right)
    assert abs(swing["plane"]) < 1.0 < 8.0 < swing["relief"], swing
    frontal, written = render_frame(build_rig(image, lmk, motion, RELIEF), REST, FOCAL)
    assert np.abs(frontal.astype(int) - image.astype(int)).mean() < 1.0  # the frontal frame is the identity image
    assert np.abs(written - lmk).max() < 1e-3


def test_relief_landmarks_follow_the_rendered_face(face) -> None:
    image, lmk, motion, landmarker = face
    rig = build_rig(image, lmk, motion, RELIEF)
    for change in (dict(yaw=12.0), dict(yaw=-12.0, pitch=5.0), dict(roll=5.0, tx=4.0, scale=1.04)):
        frame, written = render_frame(rig, REST | change, FOCAL)
        found = landmarker.detect(frame, upsample=1)[0].landmarks
        assert np.median(np.linalg.norm(found - written, axis=1)) < 3.0, change
