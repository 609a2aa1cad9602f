"""Per-frame motion with known truth for the sample corpus, partly tied to the audio.

1. The speech envelope (RMS per video frame) drives the mouth opening.
2. Speaking activity scales the head's velocity: the head moves while speaking, is still in pauses.
3. Stressed energy peaks trigger a nod (a pitch dip) or a brow raise.
4. Blinks are a Poisson process, faster in pauses; the gaze jumps between random targets.
Frame ``t`` is shown during [t/fps, (t+1)/fps); its audio is the samples of that interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d, maximum_filter1d

from thpad.pipelines.corpus.config import MotionConfig

BLINK_PROFILE = (0.5, 1.0, 1.0, 0.6, 0.25)  # eyelid closure over the frames of one blink


@dataclass
class MotionTruth:
    """Per-frame truth; every array is (T,) and angles are in degrees, offsets in pixels."""

    mouth: np.ndarray
    yaw: np.ndarray
    pitch: np.ndarray
    roll: np.ndarray
    tx: np.ndarray
    ty: np.ndarray
    scale: np.ndarray
    blink: np.ndarray
    brow: np.ndarray
    gaze_x: np.ndarray
    gaze_y: np.ndarray
    speaking: np.ndarray
    events: list[dict] = field(default_factory=list)

    def channels(self) -> dict[str, np.ndarray]:
        """The per-frame channels by name (everything but ``events``)."""
        return {k: v for k, v in vars(self).items() if isinstance(v, np.ndarray)}


def frame_envelope(audio: np.ndarray, sample_rate: int, fps: int, num_frames: int) -> np.ndarray:
    """RMS of the audio samples shown with each frame, (T,) float32."""
    hop = sample_rate / fps
    env = np.zeros(num_frames, np.float32)
    for t in range(num_frames):
        chunk = audio[int(round(t * hop)): int(round((t + 1) * hop))]
        env[t] = float(np.sqrt(np.mean(chunk**2))) if len(chunk) else 0.0
    return env


def make_motion(envelope: np.ndarray, fps: int, cfg: MotionConfig, rng: np.random.Generator) -> MotionTruth:
    """Draw one clip's motion from its speech envelope (T,)."""
    num_frames = len(envelope)
    level = envelope / max(float(np.percentile(envelope, 95)), 1e-6)
    speaking = _speaking(level, fps)
    mouth = _elementwise(lambda v: v ** 0.8, np.clip(gaussian_filter1d(np.clip(level, 0, 1.2), 0.8), 0, 1))
    activity = gaussian_filter1d(cfg.pause_stillness + (1 - cfg.pause_stillness) * speaking, fps * 0.15)
    path = {k: _smooth_path(num_frames, fps, activity, rng) for k in ("yaw", "pitch", "roll", "tx", "ty", "s")}
    nods, brows, events = _gestures(level, fps, rng)
    blink = _blinks(speaking, fps, cfg, rng)
    gaze_x, gaze_y = _gaze(num_frames, fps, cfg, rng)
    return MotionTruth(
        mouth=mouth.astype(np.float32),
        yaw=cfg.yaw_deg * path["yaw"],
        pitch=cfg.pitch_deg * path["pitch"] - cfg.nod_deg * nods,
        roll=cfg.roll_deg * path["roll"],
        tx=cfg.translate_px * path["tx"],
        ty=cfg.translate_px * path["ty"],
        scale=1.0 + (cfg.scale - 1.0) * path["s"],
        blink=blink, brow=brows, gaze_x=gaze_x, gaze_y=gaze_y,
        speaking=speaking.astype(np.float32), events=events,
    )


def _elementwise(fn, x: np.ndarray) -> np.ndarray:
    """``fn`` of each element by Python floats (libm), float64: numpy's exp and power pick CPU-specific SIMD
    kernels (AVX-512 on some machines) whose last bits differ, and the truth JSON keeps 4 decimals."""
    return np.array([fn(float(v)) for v in np.ravel(x)], np.float64).reshape(np.shape(x))


def _speaking(level: np.ndarray, fps: int) -> np.ndarray:
    """1 where speech is present (pauses shorter than 0.2 s are bridged), else 0."""
    voiced = level > 0.1
    bridged = maximum_filter1d(voiced.astype(np.float32), size=max(1, int(0.2 * fps)))
    return bridged.astype(np.float32)


def _smooth_path(num_frames: int, fps: int, activity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth path in [-1, 1] whose velocity is scaled by ``activity`` (still in pauses)."""
    velocity = gaussian_filter1d(rng.standard_normal(num_frames), fps * 0.5) * activity
    path = np.cumsum(velocity)
    path = path - path.mean()
    return (path / max(float(np.abs(path).max()), 1e-6)).astype(np.float32)


def _gestures(level: np.ndarray, fps: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Nod and brow-raise bumps (T,) in [0, 1] at stressed energy peaks, with the event list."""
    smooth = gaussian_filter1d(level, fps * 0.06)
    is_peak = (smooth == maximum_filter1d(smooth, size=int(0.6 * fps))) & (smooth > 0.6)
    nods, brows, events = np.zeros_like(level), np.zeros_like(level), []
    frames = np.arange(len(level))
    for t in np.flatnonzero(is_peak):
        bump = _elementwise(lambda f, t=t: math.exp(-0.5 * ((f - t) / (0.12 * fps)) ** 2), frames)
        kind = "nod" if rng.random() < 0.6 else "brow"
        target = nods if kind == "nod" else brows
        np.maximum(target, bump, out=target)
        events.append({"frame": int(t), "kind": kind})
    return nods.astype(np.float32), brows.astype(np.float32), events


def _blinks(speaking: np.ndarray, fps: int, cfg: MotionConfig, rng: np.random.Generator) -> np.ndarray:
    """Eyelid closure (T,) in [0, 1]: blinks at a Poisson rate that is higher in pauses."""
    blink = np.zeros(len(speaking), np.float32)
    t, refractory = 0, int(0.5 * fps)
    while t < len(speaking):
        rate = cfg.blink_rate_speech_hz if speaking[t] else cfg.blink_rate_pause_hz
        if rng.random() < rate / fps:
            for k, v in enumerate(BLINK_PROFILE):
                if t + k < len(blink):
                    blink[t + k] = v
            t += refractory
        t += 1
    return blink


def _gaze(num_frames: int, fps: int, cfg: MotionConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Gaze (T,) x and y in [-1, 1]: jumps between random targets, smoothed over ~3 frames."""
    target = np.zeros((num_frames, 2), np.float32)
    current = np.zeros(2, np.float32)
    for t in range(num_frames):
        if rng.random() < cfg.gaze_shift_hz / fps:
            current = np.array([rng.uniform(-1, 1), rng.uniform(-0.5, 0.5)], np.float32)
        target[t] = current
    smooth = gaussian_filter1d(target, 1.0, axis=0)
    return smooth[:, 0], smooth[:, 1]
