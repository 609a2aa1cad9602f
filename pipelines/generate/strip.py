"""Frame strips: the source photo beside evenly spaced frames of a generated video, as one image to look at."""

from __future__ import annotations

import cv2
import numpy as np


def frame_strip(photo: np.ndarray, frames: np.ndarray, count: int = 8, height: int = 112) -> np.ndarray:
    """(H, W', 3) uint8: the photo, then ``count`` evenly spaced frames of (L, S, S, 3), each resized to ``height``
    with a 4-px white gap between them."""
    picks = np.linspace(0, len(frames) - 1, min(count, len(frames))).round().astype(int)
    tiles = [photo, *frames[picks]]
    resized = [cv2.resize(t, (round(t.shape[1] * height / t.shape[0]), height), interpolation=cv2.INTER_AREA
                          if t.shape[0] > height else cv2.INTER_CUBIC) for t in tiles]
    gap = np.full((height, 4, 3), 255, np.uint8)
    out = [resized[0]]
    for tile in resized[1:]:
        out += [gap, tile]
    return np.concatenate(out, axis=1)
