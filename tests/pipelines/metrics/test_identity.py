"""Identity preservation (pipelines/metrics/identity.py): real dlib on real aligned portraits (Grace Hopper and the
astronaut) at 224 px and at the tiny preset's 56 px, grey frames as lost faces, and the metrics' arithmetic."""

from __future__ import annotations

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data

from tests.pipelines.metrics.test_face_measure import TINY, aligned_crop
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.metrics.identity import (
    DESC_DIM,
    SAME_PERSON,
    IdentityEncoder,
    descriptor_frechet,
    identity_metrics,
)


@pytest.fixture(scope="module")
def encoder() -> IdentityEncoder:
    return IdentityEncoder()


@pytest.fixture(scope="module")
def crops() -> dict[str, np.ndarray]:
    """Grace Hopper and the astronaut aligned to the 224 px template, and each resized to 56 px."""
    landmarker = FaceLandmarker()
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    full = {"hopper": aligned_crop(hopper, landmarker), "astronaut": aligned_crop(skimage.data.astronaut(), landmarker)}
    small = {f"{k}_{TINY}": cv2.resize(v, (TINY, TINY), interpolation=cv2.INTER_AREA) for k, v in full.items()}
    return full | small


@pytest.fixture(scope="module")
def descs(encoder: IdentityEncoder, crops: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: encoder.photo_descriptor(v) for k, v in crops.items()}


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a.astype(np.float64) - b))


# --- real faces -----------------------------------------------------------------------------------------------


def test_descriptor_is_128_d_float32_unit_scale(descs: dict[str, np.ndarray]) -> None:
    for d in descs.values():
        assert d.shape == (DESC_DIM,) and d.dtype == np.float32 and np.isfinite(d).all()
        assert 0.5 < np.linalg.norm(d) < 1.5  # dlib's descriptors are roughly unit length


@pytest.mark.parametrize("who", ["hopper", "astronaut"])
def test_same_person_at_56_and_224(descs: dict[str, np.ndarray], who: str) -> None:
    assert distance(descs[who], descs[f"{who}_{TINY}"]) < SAME_PERSON


@pytest.mark.parametrize("size", ["", f"_{TINY}"])
def test_hopper_and_astronaut_are_different_people(descs: dict[str, np.ndarray], size: str) -> None:
    assert distance(descs[f"hopper{size}"], descs[f"astronaut{size}"]) > SAME_PERSON


def test_flipped_crop_is_the_same_person(encoder: IdentityEncoder, crops: dict[str, np.ndarray],
                                         descs: dict[str, np.ndarray]) -> None:
    for who in ("hopper", f"hopper_{TINY}", "astronaut"):
        flipped = np.ascontiguousarray(crops[who][:, ::-1])  # (S, S, 3)
        assert distance(encoder.photo_descriptor(flipped), descs[who]) < SAME_PERSON


def test_grey_frame_is_not_found_and_counts_as_a_failure(encoder: IdentityEncoder, crops: dict[str, np.ndarray],
                                                         descs: dict[str, np.ndarray]) -> None:
    face = crops[f"hopper_{TINY}"]
    grey = np.full_like(face, 128)
    frames = np.stack([face, grey, face, grey])  # (4, 56, 56, 3)
    d, found = encoder.descriptors(frames)
    assert d.shape == (4, DESC_DIM) and d.dtype == np.float32
    assert found.tolist() == [True, False, True, False]
    assert np.isnan(d[~found]).all() and np.isfinite(d[found]).all()
    with_grey = identity_metrics(descs["hopper"], d, found)
    faces_only = identity_metrics(descs["hopper"], d[found], found[found])
    assert with_grey["same_person_share"] == 0.5 and faces_only["same_person_share"] == 1.0
    assert with_grey["face_found_share"] == 0.5
    assert with_grey["dlib_distance"] == pytest.approx(faces_only["dlib_distance"])
    assert with_grey["dlib_distance"] < SAME_PERSON


def test_other_person_fails_the_threshold(encoder: IdentityEncoder, crops: dict[str, np.ndarray],
                                          descs: dict[str, np.ndarray]) -> None:
    d, found = encoder.descriptors(crops["astronaut"][None])
    m = identity_metrics(descs["hopper"], d, found)
    assert m["face_found_share"] == 1.0 and m["same_person_share"] == 0.0 and m["dlib_distance"] > SAME_PERSON


def test_photo_without_a_face_is_an_error(encoder: IdentityEncoder) -> None:
    with pytest.raises(ValueError, match="no face detected"):
        encoder.photo_descriptor(np.full((TINY, TINY, 3), 128, np.uint8))
    with pytest.raises(ValueError, match="source photo must be"):
        encoder.photo_descriptor(np.zeros((TINY, TINY + 1, 3), np.uint8))


# --- arithmetic -----------------------------------------------------------------------------------------------


def test_metrics_arithmetic() -> None:
    source = np.zeros(DESC_DIM, np.float32)
    descs = np.zeros((4, DESC_DIM), np.float32)  # (4, 128)
    descs[:, 0] = [0.2, 0.7, np.nan, 0.4]
    found = np.array([True, True, False, True])
    m = identity_metrics(source, descs, found)
    assert m["dlib_distance"] == pytest.approx((0.2 + 0.7 + 0.4) / 3)
    assert m["same_person_share"] == 0.5  # 0.2 and 0.4 of 4 frames
    assert m["face_found_share"] == 0.75
    assert identity_metrics(source, descs, found, threshold=0.3)["same_person_share"] == 0.25


def test_metrics_without_any_face() -> None:
    m = identity_metrics(np.zeros(DESC_DIM), np.full((3, DESC_DIM), np.nan), np.zeros(3, bool))
    assert np.isnan(m["dlib_distance"]) and m["same_person_share"] == 0.0 and m["face_found_share"] == 0.0


def test_metrics_reject_bad_shapes() -> None:
    with pytest.raises(ValueError):
        identity_metrics(np.zeros(DESC_DIM), np.zeros((0, DESC_DIM)), np.zeros(0, bool))
    with pytest.raises(ValueError):
        identity_metrics(np.zeros(DESC_DIM), np.zeros((3, DESC_DIM)), np.ones(2, bool))


def test_descriptor_frechet_drops_lost_faces() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, DESC_DIM)) * 0.05  # (300, 128)
    b = a + 0.1
    assert descriptor_frechet(a, a) == pytest.approx(0.0, abs=1e-6)
    with_lost = np.concatenate([b, np.full((5, DESC_DIM), np.nan)])  # (305, 128)
    assert descriptor_frechet(a, with_lost) == pytest.approx(descriptor_frechet(a, b))
    assert descriptor_frechet(a, b) == pytest.approx(DESC_DIM * 0.1**2, rel=1e-3)  # the mean shift alone
