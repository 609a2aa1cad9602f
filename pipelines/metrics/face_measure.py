"""A face measurer independent of the networks being judged (issue 21, "Measurers, validated first"): dlib's 68
landmarks on aligned crops, and from them head pose (``cv2.solvePnP`` against a fixed 3-D mean face),
expression (the landmark residual after a similarity alignment, PCA-reduced), blink (the eye aspect ratio)
and mouth opening; plus the validation gate that turns a factor the measurer cannot follow into ``unavailable``.
It stands in for TH-PAD's Deep3DFace pose and expression coefficients, whose weights we lack
(docs/paper-notes.md §1.8, §8).

Conventions (the sample corpus's, ``pipelines/corpus/render.py``, so that measured angles compare directly with
its written truth). Camera and model axes: x to the image's right, y down, z away from the camera.
The head's rotation is R = Rz(roll) @ Ry(yaw) @ Rx(pitch), in degrees:
- yaw > 0: the subject turns to their own right (the nose moves toward the image's left);
- pitch > 0: the subject looks down (the nose moves down against the eyes);
- roll > 0: the head turns clockwise in the image (the top of the head toward the image's right), so a
  counter-clockwise image rotation by cv2 (positive angle in ``cv2.getRotationMatrix2D``) lowers roll.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from thpad import landmarks as G
from thpad.pipelines.media.align import similarity_lsq, template_points
from thpad.pipelines.media.config import AlignConfig
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.metrics.probe import pearson

WORK_SIZE = 224  # dlib's working size: crops are upscaled to the template's own size before prediction
# The pinhole camera's focal length in image widths. An aligned crop is a small part of a larger frame, so its
# focal length is several crop widths; 2.5 is the sample corpus's camera (``corpus/clip.py``). With 1 (a
# close-up wide angle), solvePnP reads the frontal astronaut and Grace Hopper portraits as 9-10 degrees
# pitched down; with 2.5, 4-5 degrees.
FOCAL_FACTOR = 2.5

# A rigid 3-D mean face of our own, in mm (axes as in the module docstring, origin at the nose tip). The 2-D
# layout follows dlib's landmarks on aligned real portraits scaled to a 63 mm eye distance; the depths are rough
# adult values. Only points that do not move with speech: the chin drops with the jaw and the mouth corners
# move with the lips, so with them in the fit speech would read as pitch (and as speech-tied head motion).
MEAN_FACE_INDICES = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
MEAN_FACE_MM = np.array([
    [0.0, -37.0, 20.0],    # 27 nose bridge, between the eyes
    [0.0, -25.0, 13.0],    # 28 nose ridge
    [0.0, -12.0, 6.0],     # 29 nose ridge
    [0.0, 0.0, 0.0],       # 30 nose tip
    [-16.0, 7.0, 16.0],    # 31 nostril wing, image left
    [-8.0, 9.0, 14.0],     # 32 nose base
    [0.0, 11.0, 13.0],     # 33 nose base centre
    [8.0, 9.0, 14.0],      # 34 nose base
    [16.0, 7.0, 16.0],     # 35 nostril wing, image right
    [-43.0, -34.0, 36.0],  # 36 right eye, outer corner (the subject's right, on the image left)
    [-19.0, -33.0, 26.0],  # 39 right eye, inner corner
    [19.0, -33.0, 26.0],   # 42 left eye, inner corner
    [43.0, -34.0, 36.0],   # 45 left eye, outer corner
])  # (13, 3)
MEAN_FACE_MM.setflags(write=False)

# Expression: points that do not move with expression carry the alignment; brows, eyes and lips carry the residual.
RIGID_POINTS = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)
EXPRESSION_POINTS = G.BROW_RIGHT + G.BROW_LEFT + G.EYE_RIGHT + G.EYE_LEFT + G.MOUTH_OUTER + G.MOUTH_INNER  # 42
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper and lower inner lip, left to right in the image


def camera_matrix(image_size: float, focal_factor: float = FOCAL_FACTOR) -> np.ndarray:
    """The fixed pinhole camera (3, 3): focal length ``focal_factor`` image widths, principal point at the
    image centre (pixel centres: pixel i covers [i - 0.5, i + 0.5])."""
    f, c = focal_factor * image_size, (image_size - 1) / 2
    return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])


def euler_from_rotation(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a rotation matrix (3, 3) = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    yaw = np.arcsin(np.clip(-rot[2, 0], -1.0, 1.0))
    pitch = np.arctan2(rot[2, 1], rot[2, 2])
    roll = np.arctan2(rot[1, 0], rot[0, 0])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def head_pose(landmarks: np.ndarray, image_size: float = WORK_SIZE) -> tuple[float, float, float]:
    """Head pose of one face by ``cv2.solvePnP`` (SQPnP) of ``MEAN_FACE_MM`` on its landmarks.

    Args:
        landmarks: (68, 2) landmarks in pixels of an image ``image_size`` wide (the camera scales with it, so
            the angles do not depend on the resolution).
        image_size: the image width in pixels (focal length and principal point, ``camera_matrix``).
    Returns:
        (yaw, pitch, roll) in degrees, signs as in the module docstring; NaNs when solvePnP fails or puts the
        face behind the camera.
    """
    image_points = np.asarray(landmarks, np.float64)[list(MEAN_FACE_INDICES)]  # (11, 2)
    if not np.isfinite(image_points).all():
        return float("nan"), float("nan"), float("nan")
    ok, rvec, tvec = cv2.solvePnP(MEAN_FACE_MM.astype(np.float64), image_points, camera_matrix(image_size), None,
                                  flags=cv2.SOLVEPNP_SQPNP)
    if not ok or tvec[2, 0] <= 0:
        return float("nan"), float("nan"), float("nan")
    return euler_from_rotation(cv2.Rodrigues(rvec)[0])


def interocular(landmarks: np.ndarray) -> np.ndarray:
    """Distance between the eye centres (mean of 36-41 and of 42-47) of (..., 68, 2) landmarks -> (...)."""
    right = landmarks[..., list(G.EYE_RIGHT), :].mean(axis=-2)  # (..., 2)
    left = landmarks[..., list(G.EYE_LEFT), :].mean(axis=-2)  # (..., 2)
    return np.linalg.norm(left - right, axis=-1)


def eye_aspect_ratio(landmarks: np.ndarray) -> np.ndarray:
    """Soukupová & Čech's eye aspect ratio, mean of both eyes: (|p2-p6| + |p3-p5|) / (2 |p1-p4|), with p1..p6
    the six points of an eye (36-41, 42-47). Lower is more closed (about 0.3 open, under 0.15 closed).

    Args:
        landmarks: (..., 68, 2).
    Returns:
        (...) float64.
    """
    lmk = np.asarray(landmarks, np.float64)
    ratios = []
    for eye in (G.EYE_RIGHT, G.EYE_LEFT):
        p = lmk[..., list(eye), :]  # (..., 6, 2): p1..p6
        gap = np.linalg.norm(p[..., [1, 2], :] - p[..., [5, 4], :], axis=-1).sum(axis=-1)  # (...) |p2-p6| + |p3-p5|
        ratios.append(gap / (2 * np.linalg.norm(p[..., 0, :] - p[..., 3, :], axis=-1)))
    return (ratios[0] + ratios[1]) / 2


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap, the mean distance of the pairs ``INNER_LIP_PAIRS``, over the inter-ocular distance.

    Args:
        landmarks: (..., 68, 2).
    Returns:
        (...) float64, 0 for closed lips, dimensionless (so it does not depend on the resolution).
    """
    lmk = np.asarray(landmarks, np.float64)
    upper, lower = (lmk[..., [pair[k] for pair in INNER_LIP_PAIRS], :] for k in (0, 1))  # (..., 3, 2) each
    return np.linalg.norm(upper - lower, axis=-1).mean(axis=-1) / interocular(lmk)


def normalised_shape(landmarks: np.ndarray) -> np.ndarray:
    """(68, 2) landmarks moved so that the rigid points' centroid is 0 and the inter-ocular distance is 1."""
    lmk = np.asarray(landmarks, np.float64)
    return (lmk - lmk[list(RIGID_POINTS)].mean(axis=0)) / interocular(lmk)


def mean_shape(landmarks: np.ndarray, num_iters: int = 3) -> np.ndarray:
    """The reference of ``expression``: a Procrustes mean of many faces.

    1. Start from the first face, normalised (``normalised_shape``).
    2. Align every face to it by a similarity on ``RIGID_POINTS``, average, normalise; repeat.

    Args:
        landmarks: (N, 68, 2), e.g. the real training frames' landmarks.
    Returns:
        (68, 2) float64 with rigid centroid 0 and inter-ocular distance 1.
    """
    ref = normalised_shape(landmarks[0])
    for _ in range(num_iters):
        ref = normalised_shape(align_to(landmarks, ref).mean(axis=0))
    return ref


def align_to(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each face of (N, 68, 2) landmarks mapped onto ``reference`` (68, 2) by the least-squares similarity
    (Umeyama) of its ``RIGID_POINTS`` -> (N, 68, 2) float64."""
    rigid = list(RIGID_POINTS)
    out = np.empty(landmarks.shape, np.float64)
    for i, lmk in enumerate(np.asarray(landmarks, np.float64)):
        m = similarity_lsq(lmk[rigid], reference[rigid])  # (2, 3)
        out[i] = lmk @ m[:, :2].T + m[:, 2]
    return out


def expression(landmarks: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Expression residual: the faces aligned to the reference by a similarity on the rigid points (roll, scale
    and translation removed), minus the reference, on the non-rigid points (brows, eyes, lips).

    Yaw and pitch are not removed (a 2-D alignment cannot): their foreshortening and the parallax between brows,
    eyes and lips stay in the residual, roughly 0.03 inter-ocular distances at 12 degrees, against about 0.1 for
    the sample corpus's brow raise and 0.25 for its full mouth opening (estimates, not measured here).

    Args:
        landmarks: (N, 68, 2) in any pixels.
        reference: (68, 2) from ``mean_shape`` (so residuals are in inter-ocular distances).
    Returns:
        (N, 2 * len(EXPRESSION_POINTS)) = (N, 84) float64, (x, y) per point, flattened.
    """
    aligned = align_to(landmarks, reference)  # (N, 68, 2)
    residual = aligned[:, list(EXPRESSION_POINTS)] - reference[list(EXPRESSION_POINTS)]  # (N, 42, 2)
    return residual.reshape(len(residual), -1)  # (N, 84)


@dataclass(frozen=True)
class ExpressionPCA:
    """A PCA of expression residuals, fitted on real frames: mean (D,), components (k, D) and their variances (k,)."""

    mean: np.ndarray
    components: np.ndarray
    variances: np.ndarray

    @classmethod
    def fit(cls, residuals: np.ndarray, k: int) -> ExpressionPCA:
        """The top ``k`` principal axes of residuals (N, D) (SVD of the centred rows)."""
        x = np.asarray(residuals, np.float64)
        if x.ndim != 2 or not 1 <= k <= min(x.shape):
            raise ValueError(f"cannot fit {k} components to residuals {x.shape}")
        mean = x.mean(axis=0)  # (D,)
        _, sing, vt = np.linalg.svd(x - mean, full_matrices=False)  # (min(N, D),), (min(N, D), D)
        return cls(mean=mean, components=vt[:k], variances=sing[:k] ** 2 / max(len(x) - 1, 1))

    def transform(self, residuals: np.ndarray) -> np.ndarray:
        """Coordinates (N, k) of residuals (N, D) on the principal axes."""
        return (np.asarray(residuals, np.float64) - self.mean) @ self.components.T  # (N, k)


@dataclass(frozen=True)
class Measures:
    """Per-frame measures of a clip: landmarks (T, 68, 2) in the input frames' pixels, yaw, pitch, roll (T,) in
    degrees, ear and mouth (T,), and detected (T,) bool; the scalars are NaN where a frame is not detected."""

    landmarks: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    ear: np.ndarray
    mouth: np.ndarray
    detected: np.ndarray

    def factors(self) -> dict[str, np.ndarray]:
        """The measured factors under the sample corpus's truth names, each oriented like its truth: yaw, pitch,
        roll, blink (= -ear: the truth's blink grows as the eye closes, the EAR falls) and mouth."""
        return {"yaw": self.yaw, "pitch": self.pitch, "roll": self.roll, "blink": -self.ear, "mouth": self.mouth}


def template_box(cfg: AlignConfig, size: int) -> tuple[float, float, float, float]:
    """The face box (left, top, right, bottom) that dlib's HOG detector puts around a face aligned to the
    template, in pixels of a ``size`` px crop.

    The box is square, centred on the eye midpoint moved 0.45 of the way to the inner mouth, with a side of
    1.95 eye-to-mouth distances: the mean of the detector's boxes on the aligned astronaut and Grace Hopper
    portraits ((53, 24, 182, 153) and (55, 32, 163, 140) at 224 px).
    """
    right_eye, left_eye, mouth = template_points(cfg)  # (2,) each, at cfg.size
    eyes = (right_eye + left_eye) / 2
    centre = eyes + 0.45 * (mouth - eyes)  # (2,)
    half = 0.975 * float(np.linalg.norm(mouth - eyes))
    scale = size / cfg.size
    (x0, y0), (x1, y1) = ((centre - half + 0.5) * scale - 0.5), ((centre + half + 0.5) * scale - 0.5)
    return float(x0), float(y0), float(x1), float(y1)


def is_face(landmarks: np.ndarray) -> bool:
    """Whether (68, 2) landmarks look like a face: finite, both eye centres above the inner-mouth centre, and
    the subject's right eye on the image's left."""
    lmk = np.asarray(landmarks, np.float64)
    if not np.isfinite(lmk).all():
        return False
    right, left = lmk[list(G.EYE_RIGHT)].mean(axis=0), lmk[list(G.EYE_LEFT)].mean(axis=0)  # (2,) each
    mouth = lmk[list(G.MOUTH_INNER)].mean(axis=0)  # (2,)
    return bool(right[1] < mouth[1] and left[1] < mouth[1] and right[0] < left[0])


class FaceMeasurer:
    """dlib's 68 landmarks on aligned crops of any size, predicted in the template's face box, and the
    per-frame measures built on them; build once (it loads the dlib predictor)."""

    def __init__(self, landmarker: FaceLandmarker | None = None, align: AlignConfig | None = None,
                 work_size: int = WORK_SIZE) -> None:
        self._landmarker = landmarker if landmarker is not None else FaceLandmarker()
        self._box = template_box(align or AlignConfig(), work_size)
        self._work_size = work_size

    def landmarks(self, frame: np.ndarray) -> np.ndarray:
        """68 landmarks (68, 2) of one aligned crop (S, S, 3) uint8, in its own pixels.

        The crop is upscaled to the working size with cv2's bicubic filter, the predictor runs in the
        template's box there, and the points are mapped back (pixel centres kept: x_S = (x_W + 0.5) S / W - 0.5).
        """
        size = frame.shape[0]
        work = frame if size == self._work_size else cv2.resize(
            frame, (self._work_size, self._work_size), interpolation=cv2.INTER_CUBIC)  # (W, W, 3)
        lmk = self._landmarker.landmarks(work, self._box).astype(np.float64)  # (68, 2) at W
        return (lmk + 0.5) * (size / self._work_size) - 0.5  # (68, 2) at S

    def measure(self, frames: np.ndarray) -> Measures:
        """Measure every frame of aligned crops.

        Args:
            frames: (T, S, S, 3) uint8 RGB crops aligned to the template (any S, e.g. 56 or 224).
        Returns:
            ``Measures``; a frame whose landmarks are degenerate (``is_face``) or whose pose fails is not
            detected, and its scalars are NaN (its landmarks are kept as predicted).
        """
        if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[3] != 3:
            raise ValueError(f"frames must be (T, S, S, 3), got {frames.shape}")
        size = frames.shape[1]
        lmk = np.stack([self.landmarks(f) for f in frames]) if len(frames) else np.zeros((0, 68, 2))  # (T, 68, 2)
        pose = np.array([head_pose(p, size) for p in lmk], np.float64).reshape(-1, 3)  # (T, 3)
        detected = np.array([is_face(p) for p in lmk], bool) & np.isfinite(pose).all(axis=1)  # (T,)
        with np.errstate(divide="ignore", invalid="ignore"):  # collapsed eyes of undetected frames: NaN below
            ear, mouth = eye_aspect_ratio(lmk), mouth_opening(lmk)  # (T,) each
        scalars = [np.where(detected, v, np.nan) for v in (pose[:, 0], pose[:, 1], pose[:, 2], ear, mouth)]
        return Measures(lmk.astype(np.float32), *scalars, detected=detected)


def validate_measurer(measured: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                      min_r: float) -> dict[str, dict]:
    """The validation gate: per factor of ``truth``, the Pearson r of the measured values against the truth,
    pooled over all frames where both are finite.

    Args:
        measured: factor -> (N,) measured values, oriented like the truth (``Measures.factors``).
        truth: factor -> (N,) true values of the same frames (e.g. the sample corpus's written truth).
        min_r: the lowest r a factor may have and still be believed.
    Returns:
        factor -> {"r": r, "available": r >= min_r, "reason": "" or why not}; r is NaN when the factor is not
        measured or has fewer than 3 finite frames, and a constant side gives r 0 (``probe.pearson``).
    """
    status = {}
    for name, true in truth.items():
        r, reason = factor_r(measured[name], true, min_r) if name in measured else (float("nan"), "not measured")
        available = bool(np.isfinite(r) and r >= min_r)
        status[name] = {"r": r, "available": available, "reason": "" if available else reason}
    return status


def factor_r(measured: np.ndarray, truth: np.ndarray, min_r: float) -> tuple[float, str]:
    """Pearson r of one factor's measured values (N,) against its truth (N,) over the frames where both are
    finite, and the reason to give should it fail ``min_r``."""
    a, b = np.asarray(measured, np.float64).ravel(), np.asarray(truth, np.float64).ravel()  # (N,) each
    if a.shape != b.shape:
        raise ValueError(f"{a.size} measured frames against {b.size} true frames")
    keep = np.isfinite(a) & np.isfinite(b)  # (N,)
    if keep.sum() < 3:
        return float("nan"), f"measurer has {int(keep.sum())} finite frames (< 3)"
    r = pearson(a[keep], b[keep])
    return r, f"measurer r {r:.2f} < {min_r:g} on real frames"


def gate(value: float, factor_status: Mapping[str, object]) -> float | str:
    """``value`` when the factor it is built on passed ``validate_measurer``, else "unavailable: <reason>"."""
    return value if factor_status["available"] else f"unavailable: {factor_status['reason']}"
