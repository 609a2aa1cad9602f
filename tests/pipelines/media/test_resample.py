"""Frame-rate conversion to 25 fps and the audio/video length policy (docs/paper-notes.md §1.7)."""

from __future__ import annotations

import numpy as np
import pytest

from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.resample import fit_audio_to_video, frame_indices, resample_video

FPS_RANGE = (20.0, 60.0)


def test_25_fps_is_the_identity() -> None:
    np.testing.assert_array_equal(frame_indices(40, 25.0), np.arange(40))
    frames = np.random.default_rng(0).integers(0, 255, (40, 8, 8, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resample_video(frames, 25.0, FPS_RANGE), frames)


def test_50_fps_keeps_every_other_frame() -> None:
    np.testing.assert_array_equal(frame_indices(100, 50.0), np.arange(1, 100, 2))


@pytest.mark.parametrize("fps", [30.0, 30000 / 1001, 24.0, 59.94])
def test_nearest_frame_mapping(fps: float) -> None:
    """Each output frame takes the source frame on screen at the middle of its display interval."""
    num_frames = 300
    idx = frame_indices(num_frames, fps)
    assert len(idx) == int(num_frames * 25 / fps + 1e-6)
    assert np.all(np.diff(idx) >= 0) and idx.min() >= 0 and idx.max() < num_frames
    mids = (np.arange(len(idx)) + 0.5) / 25.0
    assert np.all(idx / fps <= mids + 1e-9) and np.all(mids < (idx + 1) / fps + 1e-9)


def test_other_per_frame_arrays_resample_the_same_way() -> None:
    landmarks = np.arange(60, dtype=np.float32)[:, None, None] * np.ones((60, 68, 2), np.float32)  # (T, 68, 2)
    out = resample_video(landmarks, 30.0, FPS_RANGE)
    np.testing.assert_array_equal(out[:, 0, 0], frame_indices(60, 30.0))


@pytest.mark.parametrize("fps", [12.0, 120.0])
def test_rates_out_of_range_are_rejected_by_name(fps: float) -> None:
    with pytest.raises(RejectClip, match=f"{fps:g} fps is outside the accepted range 20-60 fps"):
        resample_video(np.zeros((10, 4, 4, 3), np.uint8), fps, FPS_RANGE)


@pytest.mark.parametrize("delta", [-1200, -1, 0, 1, 1280])
def test_audio_within_tolerance_is_fitted_to_exactly_t_frames(delta: int) -> None:
    audio = np.random.default_rng(1).standard_normal(50 * 640 + delta).astype(np.float32)
    out = fit_audio_to_video(audio, 50, 640, tolerance_frames=2)
    assert out.shape == (50 * 640,) and out.dtype == np.float32
    keep = min(len(audio), len(out))
    np.testing.assert_array_equal(out[:keep], audio[:keep])
    np.testing.assert_array_equal(out[keep:], 0.0)


@pytest.mark.parametrize(("delta", "side"), [(-3 * 640, "shorter"), (5 * 640, "longer")])
def test_audio_beyond_tolerance_is_rejected_with_a_reason(delta: int, side: str) -> None:
    audio = np.zeros(50 * 640 + delta, np.float32)
    with pytest.raises(RejectClip, match=rf"audio is \d+\.\d+ frames {side} than video") as err:
        fit_audio_to_video(audio, 50, 640, tolerance_frames=2)
    assert "tolerance 2" in err.value.reason
