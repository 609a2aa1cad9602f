"""Decoding: one swscale context per clip gives the pixels of a conversion per frame."""

from __future__ import annotations

import av
import numpy as np

from thpad.pipelines.media.video import read_video, write_video


def test_read_video_gives_the_pixels_of_a_conversion_per_frame(tmp_path) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (12, 96, 128, 3), dtype=np.uint8)  # (T, H, W, 3)
    path = write_video(tmp_path / "noise.mp4", frames, fps=25)
    with av.open(str(path)) as container:
        expected = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])  # (T, H, W, 3)
    decoded = read_video(path)
    assert decoded.frames.shape == (12, 96, 128, 3) and decoded.fps == 25.0
    assert np.array_equal(decoded.frames, expected)
    assert decoded.audio is None
