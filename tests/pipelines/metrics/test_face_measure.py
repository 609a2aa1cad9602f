"""The face measurer (pipelines/metrics/face_measure.py): head pose against known projections and the sample
corpus's renderer, eye aspect ratio and mouth opening on constructed landmarks, the measurer on real aligned
portraits, the expression residual and its PCA, and the validation gate."""

from __future__ import annotations

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
from scipy.spatial.transform import Rotation

from thpad import landmarks as G
from thpad.pipelines.corpus.config import MotionConfig, ReliefConfig
from thpad.pipelines.corpus.portraits import PORTRAITS, draw_variation, make_identity_image
from thpad.pipelines.corpus.render import build_rig, render_frame
from thpad.pipelines.media.align import align_transforms, key_centres, warp_frames
from thpad.pipelines.media.config import AlignConfig
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.metrics.face_measure import (
    MEAN_FACE_INDICES,
    MEAN_FACE_MM,
    ExpressionPCA,
    FaceMeasurer,
    camera_matrix,
    expression,
    eye_aspect_ratio,
    gate,
    head_pose,
    is_face,
    mean_shape,
    mouth_opening,
    template_box,
    validate_measurer,
)

TINY = 56  # the tiny preset's crop size


def projected(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(68, 2) landmarks: the mean face posed by Rz(roll) Ry(yaw) Rx(pitch) (scipy's intrinsic ZYX, written
    independently of the module's decomposition) and projected through the module's 224 px camera; other points 0."""
    rot = Rotation.from_euler("ZYX", [roll, yaw, pitch], degrees=True).as_matrix()
    rvec = cv2.Rodrigues(rot)[0]
    tvec = np.array([4.0, -6.0, 700.0])  # 63 mm between the eyes is about 50 px (the template's) at 224 px
    pts = cv2.projectPoints(MEAN_FACE_MM.astype(np.float64), rvec, tvec, camera_matrix(224), None)[0][:, 0]
    lmk = np.zeros((68, 2))
    lmk[list(MEAN_FACE_INDICES)] = pts
    return lmk


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def measurer(landmarker: FaceLandmarker) -> FaceMeasurer:
    return FaceMeasurer(landmarker)


def aligned_crop(rgb: np.ndarray, landmarker: FaceLandmarker) -> np.ndarray:
    """The 224 px template crop of a portrait, aligned exactly as preprocessing aligns a clip's frames."""
    face = landmarker.detect(rgb, upsample=1)[0]
    xform = align_transforms(face.landmarks[None], AlignConfig())[0]  # (2, 3)
    return warp_frames(rgb[None], xform[None], 224)[0]  # (224, 224, 3)


@pytest.fixture(scope="module")
def portraits(landmarker: FaceLandmarker) -> dict[str, np.ndarray]:
    """Grace Hopper and the astronaut, aligned and resized to the tiny preset's 56 px."""
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    crops = {"hopper": aligned_crop(hopper, landmarker),
             "astronaut": aligned_crop(skimage.data.astronaut(), landmarker)}
    return {k: cv2.resize(v, (TINY, TINY), interpolation=cv2.INTER_AREA) for k, v in crops.items()}


# --- head pose ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("angles", [(15, 10, 5), (-15, -10, -5), (15, -10, 5), (-5, 10, -15), (0, 0, 0), (25, 0, 0)])
def test_head_pose_recovers_the_angles_of_projected_landmarks(angles: tuple[float, float, float]) -> None:
    assert head_pose(projected(*angles)) == pytest.approx(angles, abs=1.0)


def test_head_pose_does_not_depend_on_the_resolution() -> None:
    lmk = projected(12, -8, 4)
    small = (lmk + 0.5) * TINY / 224 - 0.5  # the same face in a 56 px crop
    assert head_pose(small, TINY) == pytest.approx(head_pose(lmk, 224), abs=1e-3)


def test_pose_signs_follow_the_documented_image_motion() -> None:
    """yaw > 0: nose toward the image's left; pitch > 0: nose down against the eyes; roll > 0: clockwise, so
    the eye on the image's right (the subject's left, 45) sits lower than the one on the left (36)."""
    def nose_from_eyes(lmk: np.ndarray) -> np.ndarray:
        return lmk[30] - (lmk[36] + lmk[45]) / 2

    frontal = nose_from_eyes(projected(0, 0, 0))
    assert nose_from_eyes(projected(15, 0, 0))[0] < frontal[0] - 4
    assert nose_from_eyes(projected(0, 10, 0))[1] > frontal[1] + 3
    rolled = projected(0, 0, 5)
    assert rolled[45, 1] > rolled[36, 1] + 3


def test_measured_pose_agrees_in_sign_with_the_sample_corpus_renderer(landmarker: FaceLandmarker,
                                                                      measurer: FaceMeasurer) -> None:
    """Frames rendered by the corpus (with its depth relief) at known yaw, pitch and roll, aligned and shrunk to
    56 px: the measured change from the frontal frame has the truth's sign and roughly its size."""
    image = make_identity_image(PORTRAITS[0], draw_variation(np.random.default_rng(0), 0), 224, landmarker)
    motion = MotionConfig(12, 12, 5, 6, 1.04, 5, 5, 12, 0.25, 0.9, 0.5, 3, 0.15)  # params.yaml's corpus.motion
    rig = build_rig(image, landmarker.detect(image)[0].landmarks, motion, ReliefConfig(face=0.45, nose=0.35))
    poses = [(0, 0, 0), (10, 0, 0), (-10, 0, 0), (0, 10, 0), (0, -10, 0), (0, 0, 6), (0, 0, -6)]
    rendered = [render_frame(rig, {"mouth": 0.0, "blink": 0.0, "brow": 0.0, "gaze_x": 0.0, "gaze_y": 0.0,
                                   "yaw": float(y), "pitch": float(p), "roll": float(r), "tx": 0.0, "ty": 0.0,
                                   "scale": 1.0}, 2.5 * 224) for y, p, r in poses]
    frames, lmk = (np.stack(x) for x in zip(*rendered, strict=True))
    crops = warp_frames(frames, align_transforms(lmk, AlignConfig()), 224)
    small = np.stack([cv2.resize(c, (TINY, TINY), interpolation=cv2.INTER_AREA) for c in crops])
    m = measurer.measure(small)
    assert m.detected.all()
    measured = np.stack([m.yaw, m.pitch, m.roll], axis=1)  # (7, 3)
    change = measured[1:] - measured[0]  # (6, 3)
    truth = np.array(poses[1:], np.float64)
    on_axis = (change * (truth != 0)).sum(axis=1) / truth.sum(axis=1)  # measured / true change per frame
    assert np.all((on_axis > 0.5) & (on_axis < 2.0)), on_axis


# --- blink and mouth --------------------------------------------------------------------------------------------

def face_with(eye_height: float = 10.0, lip_gap: float = 0.0) -> np.ndarray:
    """(68, 2) constructed landmarks: two 30 px wide hexagonal eyes of the given lid gap with centres 50 px
    apart, and inner lips ``lip_gap`` apart, below them."""
    lmk = np.zeros((68, 2))
    h = eye_height / 2
    eye = np.array([[0, 0], [10, -h], [20, -h], [30, 0], [20, h], [10, h]], np.float64)  # p1..p6
    lmk[list(G.EYE_RIGHT)] = eye + [72, 59]
    lmk[list(G.EYE_LEFT)] = eye + [122, 59]
    lmk[list(G.MOUTH_INNER)] = np.array([[95, 120], [105, 120], [112, 120], [119, 120],
                                         [129, 120], [119, 120], [112, 120], [105, 120]], np.float64)
    lmk[[65, 66, 67], 1] += lip_gap
    return lmk


def test_eye_aspect_ratio_of_an_open_and_a_closed_eye() -> None:
    assert eye_aspect_ratio(face_with(eye_height=10.0)) == pytest.approx(20 / 60)
    assert eye_aspect_ratio(face_with(eye_height=2.0)) == pytest.approx(4 / 60)
    both = eye_aspect_ratio(np.stack([face_with(eye_height=10.0), face_with(eye_height=2.0)]))  # batched
    assert both.shape == (2,) and both[0] > both[1]


def test_mouth_opening_is_the_inner_lip_gap_over_the_eye_distance() -> None:
    gaps = [0.0, 5.0, 10.0, 20.0]
    opening = mouth_opening(np.stack([face_with(lip_gap=g) for g in gaps]))
    assert opening == pytest.approx(np.array(gaps) / 50)
    assert np.all(np.diff(opening) > 0)


# --- the measurer on real portraits ------------------------------------------------------------------------------

def test_the_template_box_matches_dlibs_detection_on_an_aligned_portrait(landmarker: FaceLandmarker) -> None:
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        rgb = cv2.cvtColor(cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    found = landmarker.detect(aligned_crop(rgb, landmarker), upsample=1)[0].box
    box = template_box(AlignConfig(), 224)
    inter = (max(0, min(box[2], found[2]) - max(box[0], found[0]))
             * max(0, min(box[3], found[3]) - max(box[1], found[1])))
    union = (box[2] - box[0]) * (box[3] - box[1]) + (found[2] - found[0]) * (found[3] - found[1]) - inter
    assert inter / union > 0.7
    assert template_box(AlignConfig(), TINY) == pytest.approx([(v + 0.5) / 4 - 0.5 for v in box])


def test_measurer_finds_a_frontal_face_in_real_56px_crops(measurer: FaceMeasurer,
                                                        portraits: dict[str, np.ndarray]) -> None:
    m = measurer.measure(np.stack([portraits["hopper"], portraits["astronaut"]]))
    assert m.detected.all() and m.landmarks.shape == (2, 68, 2)
    assert np.all(np.abs(m.yaw) < 15) and np.all(np.abs(m.pitch) < 15) and np.all(np.abs(m.roll) < 5)
    assert np.all((m.ear > 0.18) & (m.ear < 0.45))  # both eyes open
    assert m.mouth[0] < 0.08 < m.mouth[1]  # Hopper's lips are closed; the astronaut smiles with open lips
    template = np.array([[87, 59], [137, 59], [112, 120]]) * TINY / 224  # landmarks in the 56 px crop's pixels
    assert np.abs(key_centres(m.landmarks) - template).max() < 2.5


def test_rotating_the_crop_counter_clockwise_lowers_the_roll(measurer: FaceMeasurer,
                                                             portraits: dict[str, np.ndarray]) -> None:
    crop = portraits["hopper"]
    centre = ((TINY - 1) / 2, (TINY - 1) / 2)
    turned = [cv2.warpAffine(crop, cv2.getRotationMatrix2D(centre, a, 1.0), (TINY, TINY),
                             borderMode=cv2.BORDER_REPLICATE) for a in (10.0, -10.0)]  # +: counter-clockwise
    m = measurer.measure(np.stack([crop, *turned]))
    assert m.detected.all()
    assert m.roll[1] - m.roll[0] == pytest.approx(-10.0, abs=3.0)
    assert m.roll[2] - m.roll[0] == pytest.approx(10.0, abs=3.0)


def test_measure_rejects_frames_that_are_not_square_rgb(measurer: FaceMeasurer) -> None:
    with pytest.raises(ValueError, match="frames must be"):
        measurer.measure(np.zeros((2, 56, 40, 3), np.uint8))


def test_degenerate_landmarks_are_not_a_face() -> None:
    face = face_with()
    upside_down = face * [1, -1] + [0, 240]  # the eyes below the mouth
    swapped = face.copy()
    swapped[list(G.EYE_RIGHT + G.EYE_LEFT)] = face[list(G.EYE_LEFT + G.EYE_RIGHT)]  # the right eye on the right
    broken = face.copy()
    broken[40] = np.nan
    assert is_face(face)
    assert not any(is_face(x) for x in (upside_down, swapped, broken))


class FixedLandmarker:
    """A stand-in for ``FaceLandmarker`` that returns the same landmarks (at 224 px) for every frame."""

    def __init__(self, landmarks: np.ndarray) -> None:
        self._landmarks = landmarks

    def landmarks(self, rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        assert rgb.shape == (224, 224, 3)  # the measurer upscales to dlib's working size first
        return self._landmarks.astype(np.float32)


def test_a_degenerate_frame_is_not_detected_and_its_scalars_are_nan() -> None:
    upside_down = face_with() * [1, -1] + [0, 240]
    m = FaceMeasurer(FixedLandmarker(upside_down)).measure(np.zeros((3, TINY, TINY, 3), np.uint8))
    assert not m.detected.any()
    assert np.isnan(np.stack([m.yaw, m.pitch, m.roll, m.ear, m.mouth])).all()
    kept = np.broadcast_to((upside_down + 0.5) / 4 - 0.5, (3, 68, 2))  # as predicted, in the 56 px frame's pixels
    assert m.landmarks == pytest.approx(kept)


# --- expression -------------------------------------------------------------------------------------------------

def similar(lmk: np.ndarray, angle_deg: float, scale: float, shift: tuple[float, float]) -> np.ndarray:
    a = np.radians(angle_deg)
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return lmk @ rot.T + shift


def test_expression_ignores_similarity_motion_and_sees_a_brow_raise() -> None:
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 200, (68, 2))
    base[list(G.EYE_RIGHT)] = rng.uniform(40, 80, (6, 2))
    base[list(G.EYE_LEFT)] = rng.uniform(120, 160, (6, 2))
    ref = mean_shape(np.stack([similar(base, a, s, (s * 9, -a)) for a, s in ((0, 1), (8, 1.3), (-12, 0.6))]))
    moved = similar(base, 20.0, 0.5, (30.0, -7.0))
    raised = base.copy()
    raised[list(G.BROW_RIGHT + G.BROW_LEFT), 1] -= 10.0
    res = expression(np.stack([base, moved, raised]), ref)  # (3, 84)
    assert res.shape == (3, 84)
    assert np.abs(res[:2]).max() < 1e-9  # the same shape, moved, rotated and scaled: no expression
    brows = np.arange(42) < 10  # the brows come first in the residual
    delta = (res[2] - res[0]).reshape(42, 2)
    assert np.abs(delta[~brows]).max() < 1e-9 and np.abs(delta[brows, 1]).min() > 0.01


def test_expression_pca_recovers_a_two_dimensional_structure() -> None:
    rng = np.random.default_rng(1)
    axes = np.linalg.qr(rng.normal(size=(84, 2)))[0].T  # (2, 84) orthonormal
    coords = rng.normal(size=(500, 2)) * [3.0, 1.0]
    x = coords @ axes + 0.5 + rng.normal(scale=1e-3, size=(500, 84))
    pca = ExpressionPCA.fit(x, 2)
    assert pca.components.shape == (2, 84) and pca.variances[0] > pca.variances[1]
    cosines = np.linalg.svd(pca.components @ axes.T, compute_uv=False)  # of the angles between the two planes
    assert cosines == pytest.approx([1.0, 1.0], abs=1e-4)
    recon = pca.transform(x) @ pca.components + pca.mean
    assert np.abs(recon - x).max() < 1e-2
    with pytest.raises(ValueError):
        ExpressionPCA.fit(x, 0)


# --- the validation gate ----------------------------------------------------------------------------------------

def test_a_broken_measurer_fails_the_gate_and_the_truth_passes() -> None:
    rng = np.random.default_rng(2)
    truth = {"yaw": rng.normal(size=400), "blink": rng.uniform(size=400)}
    broken = validate_measurer({k: rng.normal(size=400) for k in truth}, truth, min_r=0.6)
    for name, status in broken.items():
        assert not status["available"]
        assert status["reason"] == f"measurer r {status['r']:.2f} < 0.6 on real frames", name
        assert abs(status["r"]) < 0.2
        assert gate(1.5, status) == f"unavailable: {status['reason']}"
    exact = validate_measurer(truth, truth, min_r=0.6)
    assert all(s["r"] == pytest.approx(1.0) and s["available"] and s["reason"] == "" for s in exact.values())
    assert gate(1.5, exact["yaw"]) == 1.5


def test_the_gate_skips_undetected_frames_and_flags_missing_factors() -> None:
    rng = np.random.default_rng(3)
    truth = {"yaw": rng.normal(size=100), "mouth": rng.normal(size=100)}
    measured = {"yaw": truth["yaw"] * 2 + 1}
    measured["yaw"][::7] = np.nan  # undetected frames
    status = validate_measurer(measured, truth, min_r=0.6)
    assert status["yaw"]["r"] == pytest.approx(1.0) and status["yaw"]["available"]
    assert not status["mouth"]["available"] and status["mouth"]["reason"] == "not measured"
    assert np.isnan(status["mouth"]["r"])
    lost = validate_measurer({"yaw": np.full(100, np.nan)}, {"yaw": truth["yaw"]}, min_r=0.6)["yaw"]
    assert not lost["available"] and lost["reason"] == "measurer has 0 finite frames (< 3)"
