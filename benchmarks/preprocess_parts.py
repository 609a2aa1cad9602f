"""The parts of preprocessing, timed: (a) decode only, (b) the naive per-frame recipe of public preprocessing
scripts, and the profile of the pipeline's own per-clip work in this process (what one Ray worker does per
clip), split into decode, detection, landmarks, the tracker's own code, alignment, mel and shard encoding.
``benchmarks.preprocess`` runs them beside the pipeline on Ray."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from thpad.pipelines.media import align, audio, resample
from thpad.pipelines.media.config import samples_per_frame
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.media.track import Box
from thpad.pipelines.media.video import DecodedVideo, read_video
from thpad.pipelines.preprocess import clip as clip_module
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.storage.shards import encode_sample
from thpad.storage.voxceleb import SourceClip

NAIVE_STAGES = ("decode", "detect_landmarks", "align_warp", "mel", "jpeg")
NAIVE_INCLUDES = ("per clip, in one process: read_video (video + audio), 25 fps index, dlib HOG detect "
                  "(upsample = track.detect_upsample, as public scripts run it) + 68 landmarks on EVERY frame "
                  "(largest face; a miss repeats the previous landmarks), align_transforms + warp_frames to 224 px, "
                  "resample + fit + mel, JPEG encode of every crop; no FLAC/npy/tar writing")


class Timer:
    """Seconds accumulated per named part."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn``, timed under ``name`` on every call."""
        def timed(*args: Any, **kwargs: Any) -> Any:
            with self(name):
                return fn(*args, **kwargs)
        return timed


class TimedLandmarker:
    """A ``Landmarker`` proxy that times the tracker's detector and landmark calls."""

    def __init__(self, inner: FaceLandmarker, timer: Timer) -> None:
        self.inner, self.timer = inner, timer
        self.calls: dict[str, int] = defaultdict(int)

    def boxes(self, rgb: np.ndarray, upsample: int = 0) -> list[Box]:
        self.calls["detect"] += 1
        with self.timer("detect"):
            return self.inner.boxes(rgb, upsample)

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list:
        raise AssertionError("the tracker detects through boxes()")

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        self.calls["landmarks"] += 1
        with self.timer("landmarks"):
            return self.inner.landmarks(rgb, box)


@contextlib.contextmanager
def patched(module: Any, name: str, replacement: Any) -> Iterator[None]:
    """``module.name`` replaced for the duration (the profile's timers; nothing else is patched)."""
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


def decode_all(clips: tuple[SourceClip, ...]) -> int:
    """(a) Decode every clip with ``read_video`` (video and audio); returns the frame count."""
    return sum(len(read_video(clip.video_uri).frames) for clip in clips)


def _pcm(decoded: DecodedVideo, clip: SourceClip, cfg: PreprocessConfig, num_frames: int) -> np.ndarray:
    if clip.audio_uri:
        pcm = audio.load_pcm(clip.audio_uri, cfg.audio, cfg.policy.sample_rate_range)
    else:
        pcm = audio.resample_pcm(decoded.audio, decoded.sample_rate, cfg.audio, cfg.policy.sample_rate_range)
    return resample.fit_audio_to_video(pcm, num_frames, samples_per_frame(cfg.audio),
                                       cfg.policy.length_tolerance_frames)


def _detect_every_frame(frames: np.ndarray, landmarker: FaceLandmarker, upsample: int) -> np.ndarray:
    out = np.zeros((len(frames), 68, 2), np.float32)  # (T, 68, 2)
    for t, frame in enumerate(frames):
        faces = landmarker.detect(frame, upsample)
        out[t] = faces[0].landmarks if faces else out[max(t - 1, 0)]
    return out


def naive_clip(clip: SourceClip, cfg: PreprocessConfig, landmarker: FaceLandmarker, timer: Timer) -> int:
    """(b) One clip the naive way, each part timed; returns its frame count."""
    with timer("decode"):
        decoded = read_video(clip.video_uri)
        frames = decoded.frames[resample.frame_indices(len(decoded.frames), decoded.fps, cfg.audio.fps)]
    with timer("detect_landmarks"):
        lmk = _detect_every_frame(frames, landmarker, cfg.track.detect_upsample)  # (T, 68, 2)
    with timer("align_warp"):
        xforms = align.align_transforms(lmk, cfg.align)  # (T, 2, 3)
        crops = align.warp_frames(frames, xforms, cfg.align.size, cfg.align.border)  # (T, S, S, 3)
    with timer("mel"):
        audio.mel_spectrogram(_pcm(decoded, clip, cfg, len(frames)), cfg.audio, len(frames))  # (80, 4T)
    with timer("jpeg"):
        quality = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
        for crop in crops:
            cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]), quality)
    return len(frames)


def measure_naive(clips: tuple[SourceClip, ...], cfg: PreprocessConfig) -> tuple[float, int, dict]:
    """(b): seconds, frames and ms per frame of each part; the dlib models load before any timing."""
    landmarker, timer = FaceLandmarker(), Timer()
    frames = sum(naive_clip(clip, cfg, landmarker, timer) for clip in clips)
    seconds = sum(timer.seconds[name] for name in NAIVE_STAGES)
    return seconds, frames, {name: round(1e3 * timer.seconds[name] / frames, 3) for name in NAIVE_STAGES}


def profile_clips(clips: tuple[SourceClip, ...], cfg: PreprocessConfig) -> dict:
    """The pipeline's per-clip work (``clip.process_local`` and the shard encoding), in this process, in ms per
    frame per part; ``tracker_code`` is ``track_face`` less its detector and landmark calls."""
    timer = Timer()
    landmarker = TimedLandmarker(FaceLandmarker(), timer)
    frames = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(patched(clip_module, "_decode", timer.wrap("decode", clip_module._decode)))
        stack.enter_context(patched(clip_module, "_audio_track", timer.wrap("audio_load", clip_module._audio_track)))
        stack.enter_context(patched(clip_module, "track_face", timer.wrap("track", clip_module.track_face)))
        stack.enter_context(patched(align, "warp_frames", timer.wrap("warp", align.warp_frames)))
        stack.enter_context(patched(audio, "mel_spectrogram", timer.wrap("mel", audio.mel_spectrogram)))
        for clip in clips:
            truth = json.loads(Path(clip.truth_uri).read_text()) if clip.truth_uri else None
            with timer("clip_total"):
                audio_path = Path(clip.audio_uri) if clip.audio_uri else None
                sample = clip_module.process_local(clip, Path(clip.video_uri), audio_path, truth, cfg, landmarker)
            with timer("shard_encode"):
                encode_sample(dataclasses.replace(sample, meta={**sample.meta, "split": "train"}), cfg.jpeg_quality)
            frames += sample.num_frames
    parts = dict(timer.seconds)
    parts["tracker_code"] = parts["track"] - parts["detect"] - parts["landmarks"]
    parts["other"] = parts["clip_total"] - sum(parts[k] for k in ("decode", "audio_load", "track", "warp", "mel"))
    parts["total"] = parts["clip_total"] + parts["shard_encode"]
    order = ("decode", "detect", "landmarks", "tracker_code", "warp", "mel", "audio_load", "other", "shard_encode",
             "total")
    return {"clips": len(clips), "frames": frames,
            "ms_per_frame": {k: round(1e3 * parts[k] / frames, 3) for k in order},
            "calls_per_clip": {k: round(v / len(clips), 1) for k, v in landmarker.calls.items()}}
