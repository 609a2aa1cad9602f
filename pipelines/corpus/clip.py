"""Renders one sample-corpus clip: speech, motion truth, frames, then the mp4 and its truth JSON."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np

from thpad.pipelines.corpus.config import CorpusConfig
from thpad.pipelines.corpus.motion import MotionTruth, frame_envelope, make_motion
from thpad.pipelines.corpus.plan import ClipPlan
from thpad.pipelines.corpus.portraits import PORTRAITS, make_identity_image
from thpad.pipelines.corpus.render import FaceRig, build_rig, render_frame
from thpad.pipelines.corpus.speech import Utterance, speak_clip
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.media.video import AV_CPU_FLAGS_X86_64_V2, force_av_cpu_flags, write_video
from thpad.storage.files import atomic_write_json

TRUTH_SCHEMA_VERSION = 1
SOXR_SIMD = "SOXR_USE_SIMD"  # libsoxr's switch between its SIMD and plain-C engines
FOCAL_FACTOR = 2.5  # pinhole focal length in units of the frame size (a mild perspective)


def identity_rig(plan: ClipPlan, cfg: CorpusConfig, landmarker: FaceLandmarker) -> FaceRig:
    """The identity image of ``plan`` and its precomputed warp fields."""
    source = next(p for p in PORTRAITS if p.name == plan.identity.portrait)
    image = make_identity_image(source, plan.identity.variation, cfg.size, landmarker)
    faces = landmarker.detect(image) or landmarker.detect(image, upsample=1)
    if not faces:
        raise RuntimeError(f"{plan.identity.identity}: no face found in the identity image of {source.name}")
    return build_rig(image, faces[0].landmarks, cfg.motion, cfg.relief)


def render_clip(plan: ClipPlan, cfg: CorpusConfig, root: Path, landmarker: FaceLandmarker) -> Path:
    """Render ``plan`` into ``root``; the truth JSON is written last and marks the clip complete."""
    with pinned_cpu_kernels():
        return _render_clip(plan, cfg, root, landmarker)


def _render_clip(plan: ClipPlan, cfg: CorpusConfig, root: Path, landmarker: FaceLandmarker) -> Path:
    rng = np.random.default_rng(plan.seed)
    speech = speak_clip(cfg.speech, cfg.seconds, cfg.sample_rate, rng)
    num_frames = int(round(cfg.seconds * cfg.fps))
    envelope = frame_envelope(speech.audio, cfg.sample_rate, cfg.fps, num_frames)
    motion = make_motion(envelope, cfg.fps, cfg.motion, rng)
    rig = identity_rig(plan, cfg, landmarker)
    frames, landmarks = [], []
    for t in range(num_frames):
        state = {k: float(v[t]) for k, v in motion.channels().items()}
        frame, lmk = render_frame(rig, state, FOCAL_FACTOR * cfg.size)
        frames.append(frame)
        landmarks.append(lmk)
    mp4 = root / plan.clip.relpath(".mp4")
    write_video(mp4, frames, cfg.fps, speech.audio, cfg.sample_rate, cfg.crf)
    atomic_write_json(mp4.with_suffix(".json"), truth_record(plan, cfg, speech, motion, np.stack(landmarks)))
    return mp4


@contextlib.contextmanager
def pinned_cpu_kernels() -> Iterator[None]:
    """Same corpus bytes on every x86-64 machine, while the block runs (the previous settings are restored).

    The libraries below pick SIMD kernels by CPU, and these round differently: emulated CPU differences changed
    frames, landmarks and AAC streams. Inside the block OpenCV runs its baseline code (no AVX2/AVX-512 dispatch, no
    IPP: warpAffine and HSV->RGB differ otherwise), FFmpeg its x86-64-v2 kernels (``force_av_cpu_flags``), and
    libsoxr its plain-C engine (``SOXR_USE_SIMD``, read at each call). numpy's exp and BLAS are avoided where they
    feed the output (``render.py``, ``relief.py``, ``motion.py``). The settings are process-wide, so the block
    must not overlap other work in threads of the same process.
    """
    optimized, soxr_simd = cv2.useOptimized(), os.environ.get(SOXR_SIMD)
    cv2.setUseOptimized(False)
    os.environ[SOXR_SIMD] = "0"
    force_av_cpu_flags(AV_CPU_FLAGS_X86_64_V2)
    try:
        yield
    finally:
        force_av_cpu_flags(-1)
        cv2.setUseOptimized(optimized)
        if soxr_simd is None:
            os.environ.pop(SOXR_SIMD, None)
        else:
            os.environ[SOXR_SIMD] = soxr_simd


def is_complete(plan: ClipPlan, root: Path) -> bool:
    """A clip is complete when both its mp4 and its truth JSON exist (the JSON is written last)."""
    mp4 = root / plan.clip.relpath(".mp4")
    return mp4.is_file() and mp4.with_suffix(".json").is_file()


def truth_record(plan: ClipPlan, cfg: CorpusConfig, speech: Utterance, motion: MotionTruth,
                 landmarks: np.ndarray) -> dict:
    """The JSON written beside a clip: ids, provenance, speech and the per-frame motion truth."""
    return {
        "schema_version": TRUTH_SCHEMA_VERSION,
        **asdict(plan.clip),
        "source_portrait": plan.identity.portrait,
        "variation": plan.identity.variation.to_json(),
        "fps": cfg.fps, "num_frames": len(landmarks), "size": cfg.size,
        "sample_rate": cfg.sample_rate, "num_samples": len(speech.audio),
        "speech": {"voice": speech.voice, "rate_wpm": speech.rate_wpm, "pitch": speech.pitch,
                   "text": list(speech.text), "spans_s": [list(s) for s in speech.speech_spans]},
        "motion": {k: np.round(v.astype(np.float64), 4).tolist() for k, v in motion.channels().items()},
        "events": motion.events,
        "landmarks": np.round(landmarks.astype(np.float64), 2).tolist(),  # (T, 68, 2) in frame pixels
        "units": {"yaw": "deg", "pitch": "deg", "roll": "deg", "tx": "px", "ty": "px", "scale": "x",
                  "mouth": "0..1", "blink": "0..1", "brow": "0..1", "gaze_x": "-1..1", "gaze_y": "-1..1",
                  "speaking": "0/1"},
    }
