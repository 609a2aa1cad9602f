"""Paste-back: the generated face put back into the original photo through the inverse of the alignment transform,
blended with a soft mask, as users of one-shot tools expect.

The generated frame covers the aligned crop (the PC-AVS template, docs/paper-notes.md §2.2). It is resized to the
crop's size, warped into photo coordinates with the inverse affine, and blended with a feathered ellipse around the
face, so the hair, neck and background of the photo stay as they were; pixels far from the face are the photo's
exactly. What remains visible is documented in docs/generation.md: sampled yaw and pitch move the head against the
photo's own neck, which a lower motion scale damps.
"""

from __future__ import annotations

import cv2
import numpy as np


def face_mask(size: int, feather: float = 0.08) -> np.ndarray:
    """A soft ellipse (size, size) float32 in [0, 1] over the face of the aligned crop: 1 on the face, falling to 0
    over ``feather`` of the side towards the crop's border (the template puts the eyes at 26 % and the mouth at 54 %
    of the height, so the ellipse spans brows to chin)."""
    mask = np.zeros((size, size), np.float32)
    centre = (size // 2, int(size * 0.50))
    axes = (int(size * 0.36), int(size * 0.44))
    cv2.ellipse(mask, centre, axes, 0.0, 0.0, 360.0, 1.0, thickness=-1)
    sigma = max(1.0, feather * size)
    return cv2.GaussianBlur(mask, (0, 0), sigma) * mask.max()


class PasteBack:
    """Pastes generated crops into one photo; the inverse transform and the photo-space mask are computed once."""

    def __init__(self, photo: np.ndarray, xform: np.ndarray, crop_size: int) -> None:
        """Args: photo (H, W, 3) uint8; xform (2, 3) photo pixels -> crop pixels; crop_size: the crop's side."""
        self.photo = photo
        self.crop_size = crop_size
        self.inverse = cv2.invertAffineTransform(xform.astype(np.float64))  # crop -> photo
        height, width = photo.shape[:2]
        mask = cv2.warpAffine(face_mask(crop_size), self.inverse, (width, height), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        rows, cols = np.nonzero(mask > 1e-3)
        if len(rows) == 0:
            raise ValueError("the face lies outside the photo")
        self.window = (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1)  # the only pixels that change
        top, bottom, left, right = self.window
        self.mask = mask[top:bottom, left:right, None]  # (h, w, 1)
        self.shift = self.inverse.copy()
        self.shift[:, 2] -= (left, top)  # crop -> window coordinates

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(t, S, S, 3) uint8 generated crops -> (t, H, W, 3) uint8 photos with the face replaced."""
        top, bottom, left, right = self.window
        base = self.photo[top:bottom, left:right].astype(np.float32)  # (h, w, 3)
        out = np.repeat(self.photo[None], len(frames), axis=0)  # (t, H, W, 3)
        for i, frame in enumerate(frames):
            crop = cv2.resize(frame, (self.crop_size, self.crop_size), interpolation=cv2.INTER_CUBIC)
            face = cv2.warpAffine(crop, self.shift, (right - left, bottom - top), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE).astype(np.float32)  # (h, w, 3)
            out[i, top:bottom, left:right] = np.clip(self.mask * face + (1.0 - self.mask) * base + 0.5, 0, 255)
        return out
