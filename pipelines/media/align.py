"""PC-AVS face alignment onto the 224 px template (docs/paper-notes.md §2.2, ``scripts/align_68.py``).

1. Average three centres over the whole clip: mean(36-41) (the subject's right eye, on the image
   left), mean(42-47) and the inner-mouth centre mean(60-67).
2. Fit ONE similarity transform (rotation, uniform scale, translation) mapping them onto
   (87, 59), (137, 59) and (112, 120) by least squares (Umeyama, no reflection).
3. Per frame, add the translation that brings the stable points (eye corners, nose bridge) back to
   where the clip's mean puts them, so head translation does not shake the crop.
   Deviation from PC-AVS, on purpose: PC-AVS pins the mouth centre here. The mouth moves with speech,
   so pinning it would turn lip motion into translation of the whole crop; we never use the mouth.
4. Smooth that translation over time (EMA as PC-AVS, or Gaussian), then warp every frame.
The output transforms map original frame pixels to crop pixels, so any input size is resized by them.
"""

from __future__ import annotations

import cv2
import numpy as np

from thpad import landmarks as G
from thpad.pipelines.media.config import AlignConfig

BORDERS = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT}


def template_points(cfg: AlignConfig) -> np.ndarray:
    """The three template points (3, 2): right-eye centre, left-eye centre, inner-mouth centre."""
    return np.array([cfg.right_eye, cfg.left_eye, cfg.mouth], np.float64)


def key_centres(landmarks: np.ndarray) -> np.ndarray:
    """Eye and inner-mouth centres of (..., 68, 2) landmarks -> (..., 3, 2), in template order."""
    groups = (G.EYE_RIGHT, G.EYE_LEFT, G.MOUTH_INNER)
    return np.stack([landmarks[..., list(g), :].mean(axis=-2) for g in groups], axis=-2)  # (..., 3, 2)


def similarity_lsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama 1991) from src (K, 2) to dst (K, 2), without reflection.

    Returns:
        (2, 3) float64 matrix M with dst ~= M[:, :2] @ src + M[:, 2].
    """
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    xs, xd = src - mu_s, dst - mu_d  # (K, 2)
    cov = xd.T @ xs / len(src)  # (2, 2)
    u, sing, vt = np.linalg.svd(cov)
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rot = u @ d @ vt
    scale = float(np.trace(np.diag(sing) @ d) / (xs**2).sum(axis=1).mean())
    shift = mu_d - scale * rot @ mu_s
    return np.concatenate([scale * rot, shift[:, None]], axis=1)  # (2, 3)


def smooth_translation(shift: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """Smooth a per-frame translation (T, 2) over time: EMA, Gaussian or none (see ``AlignConfig``)."""
    if cfg.smoothing == "none" or len(shift) < 2:
        return shift.copy()
    if cfg.smoothing == "gaussian":
        from scipy.ndimage import gaussian_filter1d  # here: scipy.ndimage costs ~0.5 s to import, "ema" needs none

        return gaussian_filter1d(shift, cfg.gaussian_sigma, axis=0, mode="nearest")
    out = np.empty_like(shift)
    out[0] = shift[0]
    for t in range(1, len(shift)):
        out[t] = cfg.ema_prev_weight * out[t - 1] + (1.0 - cfg.ema_prev_weight) * shift[t]
    return out


def align_transforms(landmarks: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """Per-frame affine transforms from original frame pixels to the aligned crop.

    Args:
        landmarks: (T, 68, 2) landmarks in original frame pixels (tracked, not the truth).
        cfg: template and smoothing.
    Returns:
        (T, 2, 3) float32: the clip's similarity plus each frame's smoothed stable-point translation.
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (T, 68, 2), got {landmarks.shape}")
    lmk = landmarks.astype(np.float64)
    sim = similarity_lsq(key_centres(lmk).mean(axis=0), template_points(cfg))  # (2, 3)
    stable = lmk[:, list(cfg.stable_points)].mean(axis=1)  # (T, 2) per-frame stable-point mean
    mapped = stable @ sim[:, :2].T + sim[:, 2]  # (T, 2) where the similarity puts it
    target = mapped.mean(axis=0)  # (2,) the template position of the stable points' mean
    shift = smooth_translation(target - mapped, cfg)  # (T, 2)
    xforms = np.repeat(sim[None], len(lmk), axis=0)  # (T, 2, 3)
    xforms[:, :, 2] += shift
    return xforms.astype(np.float32)


def transform_points(points: np.ndarray, xforms: np.ndarray) -> np.ndarray:
    """Map per-frame points (T, K, 2) through per-frame transforms (T, 2, 3) -> (T, K, 2) float32."""
    out = np.einsum("tij,tkj->tki", xforms[:, :, :2], points) + xforms[:, None, :, 2]  # (T, K, 2)
    return out.astype(np.float32)


def warp_frames(frames: np.ndarray, xforms: np.ndarray, size: int, border: str = "constant") -> np.ndarray:
    """Warp each frame (T, H, W, 3) uint8 by its transform (T, 2, 3) into (T, size, size, 3) uint8.

    Bilinear sampling; ``border`` is one of ``BORDERS`` (pixels from outside the source frame).
    """
    if len(frames) != len(xforms):
        raise ValueError(f"{len(frames)} frames but {len(xforms)} transforms")
    out = np.empty((len(frames), size, size, 3), np.uint8)  # (T, size, size, 3)
    for t, (frame, m) in enumerate(zip(frames, xforms, strict=True)):
        out[t] = cv2.warpAffine(frame, m.astype(np.float64), (size, size), flags=cv2.INTER_LINEAR,
                                borderMode=BORDERS[border])
    return out
