"""The head pose of a face with depth relief (``corpus.relief``): each pixel is a 3-D point at its depth, and
the frame moves every point by how rotation, scale, shift and the pinhole camera move it relative to the
frontal view. The frontal frame is the identity image itself; with no relief the map is the plane's
homography (``render.pose_homography``)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from thpad.pipelines.corpus.config import ReliefConfig

NOSE_TIP, OUTER_EYE_CORNERS, JAW_ENDS, CHIN, BROW = 30, (36, 45), (0, 16), 8, 19
NOSE_WIDTH = 0.18  # the nose bump's standard deviation, in units of the outer eye-corner distance
INVERSE_STEPS = 5  # fixed-point steps that invert the forward map (each shrinks the error about tenfold)


def depth_map(landmarks: np.ndarray, size: int, relief: ReliefConfig) -> np.ndarray:
    """The (size, size) float32 depth toward the camera, in pixels, of a face with ``landmarks`` (68, 2)."""
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    half_width = (landmarks[JAW_ENDS[1], 0] - landmarks[JAW_ENDS[0], 0]) / 2
    half_height = (landmarks[CHIN, 1] - landmarks[BROW, 1]) * 0.65
    centre = (landmarks[:, 0].mean(), (landmarks[CHIN, 1] + landmarks[BROW, 1]) / 2)
    inside = 1 - ((xs - centre[0]) / half_width) ** 2 - ((ys - centre[1]) / half_height) ** 2  # (S, S)
    depth = relief.face * half_width * np.sqrt(np.clip(inside, 0, None))  # (S, S)
    eyes = math.hypot(*(landmarks[OUTER_EYE_CORNERS[0]] - landmarks[OUTER_EYE_CORNERS[1]]).tolist())
    nose = landmarks[NOSE_TIP]
    axis = np.arange(size, dtype=np.float64)
    spread = 2 * (NOSE_WIDTH * eyes) ** 2
    bx, by = ([math.exp(-((a - float(c)) ** 2) / spread) for a in axis.tolist()] for c in nose)
    bump = np.multiply.outer(np.array(by), np.array(bx))  # (S, S): separable; libm exp, not numpy's SIMD exp
    return (depth + relief.nose * eyes * bump).astype(np.float32)


def rotate(xyz: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """``xyz @ rotation.T`` for points (..., 3) as elementwise float64 products and sums in a fixed order (a
    matmul goes to BLAS, whose kernel, and so its rounding, depends on the CPU)."""
    x, y, z = (np.asarray(xyz[..., i:i + 1], np.float64) for i in range(3))
    return x * rotation[:, 0] + y * rotation[:, 1] + z * rotation[:, 2]


def forward(points: np.ndarray, depth: np.ndarray, centre: np.ndarray, rotation: np.ndarray,
            state: dict[str, float], focal: float) -> np.ndarray:
    """Where the pose moves points (..., 2) of depths (...,): their projection after the pose minus their
    frontal projection, added to the points."""
    def project(xyz: np.ndarray) -> np.ndarray:  # (..., 3) -> (..., 2)
        return focal * xyz[..., :2] / (focal + xyz[..., 2:3])

    rel = np.concatenate([points - centre, -depth[..., None]], axis=-1)  # (..., 3), z away from the camera
    posed = project(rotate(state["scale"] * rel, rotation)) + [state["tx"], state["ty"]]  # (..., 2)
    return (points + posed - project(rel)).astype(np.float32)


def relief_pose(image: np.ndarray, landmarks: np.ndarray, depth: np.ndarray, centre: np.ndarray,
                rotation: np.ndarray, state: dict[str, float], focal: float) -> tuple[np.ndarray, np.ndarray]:
    """The posed frame (S, S, 3) and its landmarks (68, 2): the landmarks by the forward map at their depths,
    the frame by its inverse (fixed-point steps: source = target - displacement(source))."""
    size = image.shape[0]
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    grid = np.stack([xs, ys], axis=-1)  # (S, S, 2)
    shift = forward(grid, depth, centre, rotation, state, focal) - grid  # (S, S, 2) displacement at the source
    source = grid.copy()
    for _ in range(INVERSE_STEPS):
        source = grid - cv2.remap(shift, source[..., 0], source[..., 1], cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)  # (S, S, 2)
    frame = cv2.remap(image, source[..., 0], source[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    at = cv2.remap(depth, landmarks[:, 0:1].astype(np.float32), landmarks[:, 1:2].astype(np.float32),
                   cv2.INTER_LINEAR)[:, 0]  # (68,) depth at each landmark
    return frame, forward(landmarks.astype(np.float32), at, centre, rotation, state, focal)
