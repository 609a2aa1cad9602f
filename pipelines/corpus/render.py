"""Renders a talking head from one identity image: landmark-guided local warps, then a head pose.

1. Local expression: smooth displacement fields, one per warped control (mouth opening, brow raise,
   gaze x/y), each a Gaussian-weighted blend of landmark displacements with the rest of
   the face pinned; a frame's field is their sum weighted by the frame's truth. What a warp cannot
   show is painted (``paint.py``): the dark gap of an open mouth, and the eyelid over a closing eye.
2. Head pose: the face is a plane rotated by yaw, pitch and roll about its centre, scaled and
   shifted, and seen through a pinhole camera: one homography per frame. With ``corpus.relief`` the
   face has depth (``relief.py``) and every pixel moves by its own 3-D point's motion.
The true 68 landmarks of each rendered frame are the base landmarks moved by exactly these maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from thpad import landmarks as G
from thpad.pipelines.corpus.config import MotionConfig, ReliefConfig
from thpad.pipelines.corpus.paint import lid_colours, paint_lids, paint_mouth
from thpad.pipelines.corpus.relief import depth_map, relief_pose, rotate

CONTROLS = ("mouth", "blink", "brow", "gaze_x", "gaze_y")
WARPED = ("mouth", "brow", "gaze_x", "gaze_y")  # a blink moves the landmarks, but its lid is painted, not warped


@dataclass(frozen=True)
class FaceRig:
    """An identity image (S, S, 3), its landmarks (68, 2), a displacement field per control, the colour of each
    upper eyelid (2, 3) and the face's depth (S, S) toward the camera (None: a flat plane)."""

    image: np.ndarray
    landmarks: np.ndarray
    point_moves: dict[str, np.ndarray]
    fields: dict[str, np.ndarray]
    lids: np.ndarray
    depth: np.ndarray | None = None


def build_rig(image: np.ndarray, landmarks: np.ndarray, cfg: MotionConfig,
              relief: ReliefConfig | None = None) -> FaceRig:
    """Precompute the per-control displacement fields (S, S, 2) and, with a relief, the depth for one identity
    image."""
    eye_dist = math.hypot(*(landmarks[list(G.EYE_LEFT)].mean(0) - landmarks[list(G.EYE_RIGHT)].mean(0)).tolist())
    moves = _control_moves(landmarks, cfg, eye_dist)
    size = image.shape[0]
    sigmas = {"mouth": 0.22, "blink": 0.08, "brow": 0.22, "gaze_x": 0.07, "gaze_y": 0.07}
    fields = {}
    for name in WARPED:
        points, disp = moves[name]
        fields[name] = _blend_field(points, disp, size, sigmas[name] * eye_dist)
    point_moves = {name: _blend_at(points, disp, landmarks, sigmas[name] * eye_dist)
                   for name, (points, disp) in moves.items()}
    flat = relief is None or (relief.face == 0 and relief.nose == 0)
    depth = None if flat else depth_map(landmarks, size, relief)
    return FaceRig(image=image, landmarks=landmarks.astype(np.float32), point_moves=point_moves, fields=fields,
                   lids=lid_colours(image, landmarks), depth=depth)


def _control_moves(lmk: np.ndarray, cfg: MotionConfig, eye_dist: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each control: the landmarks it moves, their displacement at full strength, plus pinned points."""
    down = np.array([0.0, 1.0], np.float32)
    lower_lip = [55, 56, 57, 58, 59, 65, 66, 67]
    moves = {
        "mouth": {**{i: down * cfg.mouth_px for i in lower_lip},
                  **{i: down * cfg.mouth_px * 0.7 for i in range(5, 12)},
                  **{i: -down * cfg.mouth_px * 0.12 for i in (50, 51, 52, 61, 62, 63)}},
        "blink": {i: (lmk[j] - lmk[i]) * 0.9 for i, j in ((37, 41), (38, 40), (43, 47), (44, 46))},
        "brow": {i: -down * cfg.brow_px for i in (*G.BROW_RIGHT, *G.BROW_LEFT)},
        "gaze_x": {},
        "gaze_y": {},
    }
    out = {}
    for name, moved in moves.items():
        points = [lmk[i] for i in moved]
        disp = list(moved.values())
        if name.startswith("gaze"):
            axis = np.array([1.0, 0.0] if name == "gaze_x" else [0.0, 0.6], np.float32)
            for eye in (G.EYE_RIGHT, G.EYE_LEFT):
                points.append(lmk[list(eye)].mean(0))
                disp.append(axis * cfg.gaze_px)
        pinned = [lmk[i] for i in range(68) if i not in moved]
        out[name] = (np.array(points + pinned, np.float32),
                     np.array(disp + [np.zeros(2, np.float32)] * len(pinned), np.float32))
    return out


def _blend_at(points: np.ndarray, disp: np.ndarray, query: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted blend of point displacements at query points (Q, 2) -> (Q, 2).

    A constant background weight pulls the field to zero far from every landmark, so pixels away
    from the face stay put. (An exact RBF solve was tried first: with moving and pinned points close
    together it oscillates wildly away from the face.) Computed machine-independently (``_blend``).
    """
    weights = _gauss(query[:, 0], points[:, 0], sigma) * _gauss(query[:, 1], points[:, 1], sigma)  # (Q, P)
    return _blend(weights, disp)


def _blend_field(points: np.ndarray, disp: np.ndarray, size: int, sigma: float) -> np.ndarray:
    axis = np.arange(size, dtype=np.float64)
    wx, wy = _gauss(axis, points[:, 0], sigma), _gauss(axis, points[:, 1], sigma)  # (S, P) each
    weights = (wy[:, None, :] * wx[None, :, :]).reshape(size * size, -1)  # (S*S, P): row-major (y, x)
    return _blend(weights, disp).reshape(size, size, 2)


def _gauss(q: np.ndarray, p: np.ndarray, sigma: float) -> np.ndarray:
    """exp(-(q - p)^2 / (2 sigma^2)) for every pair (Q, P), float64, by libm's exp: numpy's exp picks a SIMD
    kernel by CPU (AVX2, AVX-512) and its last bits differ between machines; the Gaussian is separable, so
    only Q * P values are needed."""
    d = np.subtract.outer(np.asarray(q, np.float64), np.asarray(p, np.float64))
    e = -(d * d) / (2.0 * sigma * sigma)
    return np.fromiter((math.exp(v) for v in e.ravel().tolist()), np.float64, e.size).reshape(e.shape)


def _blend(weights: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """sum_p w[:, p] disp[p] / (sum_p w[:, p] + e^-2), (Q, 2) float32: elementwise float64 sums in a fixed
    order, not a matmul (BLAS kernels and numpy's SIMD reductions sum in a CPU-dependent order)."""
    disp = np.asarray(disp, np.float64)
    num = np.zeros((len(weights), 2))
    den = np.full(len(weights), math.exp(-2.0))
    for i in range(weights.shape[1]):
        w = np.ascontiguousarray(weights[:, i])
        den += w
        num += w[:, None] * disp[i]
    return (num / den[:, None]).astype(np.float32)


def render_frame(rig: FaceRig, state: dict[str, float], focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame for a truth ``state`` (mouth, blink, brow, gaze_x, gaze_y, yaw, pitch, roll,
    tx, ty, scale). Returns the (S, S, 3) uint8 frame and its true landmarks (68, 2)."""
    size = rig.image.shape[0]
    field = sum(state[c] * rig.fields[c] for c in WARPED)  # (S, S, 2)
    lmk = rig.landmarks + sum(state[c] * rig.point_moves[c] for c in CONTROLS)  # (68, 2)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    local = cv2.remap(rig.image, xs - field[..., 0], ys - field[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REFLECT)
    paint_mouth(local, rig.landmarks, lmk, state["mouth"])
    paint_lids(local, rig.landmarks, lmk, state["blink"], rig.lids)
    if rig.depth is not None:
        rotation = _rotation(state["yaw"], state["pitch"], state["roll"])
        return relief_pose(local, lmk, rig.depth, rig.landmarks.mean(axis=0), rotation, state, focal)
    homography = pose_homography(rig.landmarks, state, size, focal)
    frame = cv2.warpPerspective(local, homography, (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT)
    moved = cv2.perspectiveTransform(lmk[None].astype(np.float64), homography)[0]  # (68, 2)
    return frame, moved.astype(np.float32)


def pose_homography(lmk: np.ndarray, state: dict[str, float], size: int, focal: float) -> np.ndarray:
    """The (3, 3) homography of the face plane rotated about its centre, scaled and shifted."""
    centre = lmk.mean(axis=0)
    half = size / 2
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.float64)
    rot = _rotation(state["yaw"], state["pitch"], state["roll"])
    pts3 = rotate(np.concatenate([corners * state["scale"], np.zeros((4, 1))], axis=1), rot)  # (4, 3)
    depth = focal + pts3[:, 2:3]
    projected = focal * pts3[:, :2] / depth + centre + [state["tx"], state["ty"]]
    src = (corners + centre).astype(np.float32)
    return cv2.getPerspectiveTransform(src, projected.astype(np.float32))


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Rz(roll) @ Ry(yaw) @ Rx(pitch), written out with libm's sin and cos (no numpy SIMD kernels, no BLAS)."""
    y, p, r = math.radians(yaw), math.radians(pitch), math.radians(roll)
    cy, sy, cp, sp, cr, sr = math.cos(y), math.sin(y), math.cos(p), math.sin(p), math.cos(r), math.sin(r)
    return np.array([[cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp],
                     [sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp],
                     [-sy, cy * sp, cy * cp]])
