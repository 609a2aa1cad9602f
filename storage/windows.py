"""Per-frame audio windows cut from a clip's stored mel spectrogram (docs/paper-notes.md §2.1).

A clip's mel is stored once, (n_mels, bins_per_frame * T). Mel bin ``k`` is centred at time
``k * hop / sample_rate`` (librosa ``center=True``), so with 16 kHz, hop 160 and 25 fps there are 4
bins per video frame. Video frame ``t`` is shown during [t/fps, (t+1)/fps); its window covers video
frames t-2 .. t+2, i.e. mel bins (t-2)*4 .. (t+3)*4-1: 20 bins = 0.2 s centred on the frame, as in
PC-AVS. Bins outside the clip are zero and flagged invalid.
"""

from __future__ import annotations

import numpy as np


def mel_window(mel: np.ndarray, frame: int, frames_per_window: int = 5,
               bins_per_frame: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The audio window of video frame ``frame``.

    Args:
        mel: (n_mels, bins_per_frame * T) spectrogram of the clip (any float dtype).
        frame: video frame index, 0 <= frame < T (edge frames get zero-filled windows).
        frames_per_window: video frames covered by one window (odd; 5 for 0.2 s at 25 fps).
        bins_per_frame: mel bins per video frame (4 at 16 kHz, hop 160, 25 fps).
    Returns:
        window (n_mels, frames_per_window * bins_per_frame) float32 and valid (same width,) bool.
    """
    if frames_per_window % 2 != 1:
        raise ValueError(f"frames_per_window must be odd so the window is centred, got {frames_per_window}")
    width = frames_per_window * bins_per_frame
    start = (frame - frames_per_window // 2) * bins_per_frame
    window = np.zeros((mel.shape[0], width), np.float32)  # (n_mels, width)
    valid = np.zeros(width, bool)
    lo, hi = max(start, 0), min(start + width, mel.shape[1])
    if hi > lo:
        window[:, lo - start: hi - start] = mel[:, lo:hi]
        valid[lo - start: hi - start] = True
    return window, valid
