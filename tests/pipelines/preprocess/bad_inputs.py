"""Writes broken, hostile and unusable inputs into a VoxCeleb2-layout folder, each with the words its
refusal reason must contain."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from thpad.pipelines.media.video import read_video, write_video


def _path(root: Path, identity: str, name: str = "00001.mp4") -> Path:
    # Under test/: the dev groups (and so the train/val split) stay those of the good clips.
    path = root / "test" / "mp4" / identity / "badinput000" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _side_by_side(frame: np.ndarray) -> np.ndarray:
    return np.concatenate([frame, frame[:, ::-1]], axis=1)  # (224, 448, 3): two faces


def _tiny_face(frame: np.ndarray) -> np.ndarray:
    canvas = np.full_like(frame, 128)
    small = cv2.resize(frame, (70, 70), interpolation=cv2.INTER_AREA)
    canvas[10:80, 10:80] = small
    return canvas


def _audio_only_mp4(audio: np.ndarray, rate: int) -> bytes:
    """An mp4 container holding an AAC track and no video stream."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio[None].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def add_bad_inputs(root: Path, good_clip: Path) -> dict[str, str]:
    """Write the bad inputs below ``root``; returns {source path: regex its reason must match}."""
    good = read_video(good_clip)
    frames, audio, rate = good.frames, good.audio, good.sample_rate
    rng = np.random.default_rng(0)
    expected = {}
    p = _path(root, "id90001")
    p.write_bytes(b"")
    expected[str(p)] = "empty file"
    p = _path(root, "id90002")
    p.write_bytes(good_clip.read_bytes()[: good_clip.stat().st_size // 3])
    expected[str(p)] = "cannot decode"
    p = _path(root, "id90003")
    p.write_bytes(b"this is not a video\n" * 100)
    expected[str(p)] = "cannot decode"
    expected[str(write_video(_path(root, "id90004"), frames, 25, None))] = "no audio"
    noise = [rng.integers(0, 255, frames.shape[1:], dtype=np.uint8) for _ in range(len(frames))]
    expected[str(write_video(_path(root, "id90005"), noise, 25, audio, rate))] = "no face"
    expected[str(write_video(_path(root, "id90006"), [_tiny_face(f) for f in frames], 25, audio, rate))] = \
        "no face|below min_face_size"
    expected[str(write_video(_path(root, "id90007"), frames, 25, audio[: rate // 2], rate))] = "shorter"
    expected[str(write_video(_path(root, "id90008"), frames[::2], 12, audio, rate))] = "frame rate"
    expected[str(write_video(_path(root, "id90009"), frames, 25, np.zeros_like(audio), rate))] = "silent"
    expected[str(write_video(_path(root, "id90010"), [_side_by_side(f) for f in frames], 25, audio, rate))] = \
        "faces"
    audio_only = _path(root, "id90011")
    audio_only.write_bytes(_audio_only_mp4(audio, rate))
    expected[str(audio_only)] = "no video stream"
    stray = root / "dev" / "mp4" / "stray.mp4"
    stray.write_bytes(good_clip.read_bytes())
    expected[str(stray)] = "not in the VoxCeleb2 layout"
    return expected
