"""Conversions between the frames users see (uint8 RGB arrays) and the tensors the networks take."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def to_model_input(aligned: np.ndarray, size: int) -> torch.Tensor:
    """An aligned crop (S0, S0, 3) uint8 at the template's size -> (3, size, size) float in [-1, 1], resized as the
    training reader resizes (area interpolation)."""
    if aligned.shape[0] != size:
        aligned = cv2.resize(aligned, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(aligned)).permute(2, 0, 1).float().div(127.5).sub(1.0)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """(t, 3, S, S) in [-1, 1] -> (t, S, S, 3) uint8 RGB."""
    return frames.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
