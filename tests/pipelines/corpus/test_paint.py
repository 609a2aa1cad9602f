"""Painted expression: a blink's eyelid hides the iris, ends at the written lid landmarks, and leaves the rest of
the face alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from thpad.pipelines.corpus.paint import EYES, lid_colours
from thpad.pipelines.corpus.portraits import PORTRAITS, draw_variation, make_identity_image
from thpad.pipelines.corpus.render import build_rig, render_frame
from thpad.pipelines.media.faces import FaceLandmarker

REST = dict(mouth=0.0, blink=0.0, brow=0.0, gaze_x=0.0, gaze_y=0.0, yaw=0.0, pitch=0.0, roll=0.0,
            tx=0.0, ty=0.0, scale=1.0)
FOCAL = 2.5 * 224


@pytest.fixture(scope="module")
def rig(micro_params):
    landmarker = FaceLandmarker()
    image = make_identity_image(PORTRAITS[0], draw_variation(np.random.default_rng(0), 0), 224, landmarker)
    return build_rig(image, landmarker.detect(image)[0].landmarks, micro_params.corpus.motion)


def eye_mask(lmk: np.ndarray, size: int, eyes: tuple = EYES) -> np.ndarray:
    """(S, S) bool: the inside of the eyes' 6-point outlines."""
    mask = np.zeros((size, size), np.uint8)
    for left, upper, right, lower in eyes:
        outline = [left, *upper, right, *lower[::-1]]
        cv2.fillPoly(mask, [np.round(lmk[outline]).astype(np.int32)], 1)
    return mask.astype(bool)


def test_lid_colour_is_the_skin_above_the_eye(rig) -> None:
    colours = lid_colours(rig.image, rig.landmarks)  # (2, 3)
    inside = rig.image[eye_mask(rig.landmarks, 224)].astype(np.float32)  # (P, 3)
    assert colours.shape == (2, 3)
    # The lid is lighter than the open eye, whose iris and lashes are dark.
    assert colours.mean() > inside.mean() + 20


def test_lid_colour_at_the_image_border_is_read_inside_it() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:3, :3] = (200, 150, 100)  # the only colour near the corner
    lmk = np.zeros((68, 2), np.float32)  # every point at pixel (0, 0)
    np.testing.assert_array_equal(lid_colours(image, lmk), [[200, 150, 100]] * 2)


def test_a_full_blink_covers_the_eye_with_the_lid(rig) -> None:
    open_eye, lmk_open = render_frame(rig, REST, FOCAL)
    closed, lmk_closed = render_frame(rig, REST | {"blink": 1.0}, FOCAL)
    for eye, colour in zip(EYES, rig.lids, strict=True):
        mask = eye_mask(rig.landmarks, 224, (eye,))
        off_open = np.abs(open_eye[mask].astype(np.float32) - colour).mean()
        off_closed = np.abs(closed[mask].astype(np.float32) - colour).mean()
        # Not 0: the lid stops at the written lid points, short of the lower lid, and draws a dark lash line.
        assert off_closed < 0.65 * off_open, f"closed eye {off_closed:.1f} from the lid colour, open {off_open:.1f}"
    # The written upper lid moved down toward the lower lid; points away from the eyes kept their place.
    assert (lmk_closed[[37, 38, 43, 44], 1] - lmk_open[[37, 38, 43, 44], 1]).min() > 2.0
    away = [*range(17), *range(27, 36), *range(48, 68)]
    assert np.abs(lmk_closed[away] - lmk_open[away]).max() < 0.5
    far = np.ones((224, 224), bool)
    far[int(rig.landmarks[17:48, 1].min()) - 4:int(rig.landmarks[36:48, 1].max()) + 4] = False
    assert np.array_equal(closed[far], open_eye[far])


def test_the_lid_ends_at_the_written_landmarks(rig) -> None:
    """Half closed: above the written lid edge it is lid, below it the eye still shows."""
    half, lmk = render_frame(rig, REST | {"blink": 0.5}, FOCAL)
    colour = rig.lids[0]
    edge = lmk[[37, 38]].mean(0)  # (2,)
    x = int(round(edge[0]))
    above = half[int(edge[1]) - 2, x].astype(np.float32)
    below_open = render_frame(rig, REST, FOCAL)[0][int(edge[1]) + 2, x].astype(np.float32)
    below = half[int(edge[1]) + 2, x].astype(np.float32)
    assert np.abs(above - colour).max() < 12
    assert np.array_equal(below, below_open)
