"""Frame-rate conversion to 25 fps and the audio/video length policy (docs/paper-notes.md §1.7, §2.1).

TH-PAD and PC-AVS work at 25 fps with 640 audio samples (4 mel bins) per video frame, so every clip
is brought to exactly that before features are cut:

1. Video: nearest-frame index mapping. Output frame ``j`` is shown during [j/25, (j+1)/25); it takes
   the source frame on screen at the middle of that interval, ``floor((j + 0.5) * fps / 25)``. At
   25 fps this is the identity; no frames are blended, so landmarks stay exact.
2. Audio: a clip whose audio is within ``tolerance_frames`` of the video's length is zero-padded or
   trimmed at the end to exactly T frames; otherwise it is rejected (the start of both streams is
   taken as time 0, so a large length mismatch usually means an offset we cannot see).
"""

from __future__ import annotations

import math

import numpy as np

from thpad.pipelines.media.errors import RejectClip

EPS = 1e-6  # absorbs float error in frame-time products such as 29.97 * k / 25


def frame_indices(num_frames: int, fps: float, target_fps: float = 25.0) -> np.ndarray:
    """Source frame index for each output frame at ``target_fps`` (nearest-frame mapping).

    Args:
        num_frames: source frames.
        fps: source frame rate.
        target_fps: output frame rate.
    Returns:
        (T_out,) int64 indices into the source frames, T_out = floor(num_frames * target_fps / fps):
        only output frames whose whole display interval is covered by the source.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    num_out = math.floor(num_frames * target_fps / fps + EPS)
    mids = (np.arange(num_out) + 0.5) * (fps / target_fps)  # (T_out,) source-frame time of each middle
    return np.minimum(np.floor(mids + EPS).astype(np.int64), num_frames - 1)


def check_fps(fps: float, fps_range: tuple[float, float]) -> None:
    """Raise ``RejectClip`` naming the rate when ``fps`` is outside ``fps_range`` (inclusive)."""
    low, high = fps_range
    if not low - EPS <= fps <= high + EPS:
        raise RejectClip(f"video frame rate {fps:g} fps is outside the accepted range {low:g}-{high:g} fps")


def resample_video(frames: np.ndarray, fps: float, fps_range: tuple[float, float],
                   target_fps: float = 25.0) -> np.ndarray:
    """Convert frames to ``target_fps`` by nearest-frame index mapping.

    Args:
        frames: (T, H, W, 3) frames (or any per-frame array, e.g. landmarks (T, 68, 2)).
        fps: their frame rate.
        fps_range: (lowest, highest) accepted source rate.
        target_fps: output frame rate.
    Returns:
        (T_out, ...) the selected frames.
    Raises:
        RejectClip: the rate is outside ``fps_range``, or no whole output frame remains.
    """
    check_fps(fps, fps_range)
    idx = frame_indices(len(frames), fps, target_fps)
    if len(idx) == 0:
        raise RejectClip(f"{len(frames)} frames at {fps:g} fps is shorter than one frame at {target_fps:g} fps")
    return frames[idx]  # (T_out, ...)


def fit_audio_to_video(audio: np.ndarray, num_frames: int, samples_per_frame: int,
                       tolerance_frames: float) -> np.ndarray:
    """Pad or trim audio to exactly ``num_frames`` video frames, or reject the clip.

    Args:
        audio: (N,) mono samples.
        num_frames: T, the video's frame count (after resampling to 25 fps).
        samples_per_frame: audio samples per video frame (640 at 16 kHz, 25 fps).
        tolerance_frames: the largest accepted |N / samples_per_frame - T|.
    Returns:
        (T * samples_per_frame,) audio: trimmed at the end, or zero-padded at the end.
    Raises:
        RejectClip: the lengths differ by more than the tolerance.
    """
    audio_frames = len(audio) / samples_per_frame
    diff = audio_frames - num_frames
    if abs(diff) > tolerance_frames + EPS:
        side = "shorter" if diff < 0 else "longer"
        raise RejectClip(f"audio is {abs(diff):.2f} frames {side} than video ({num_frames} frames; "
                         f"tolerance {tolerance_frames:g})")
    want = num_frames * samples_per_frame
    if len(audio) >= want:
        return audio[:want]
    return np.concatenate([audio, np.zeros(want - len(audio), audio.dtype)])  # (T * samples_per_frame,)
