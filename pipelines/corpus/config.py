"""Configuration of the sample corpus generator (``corpus`` section of params.yaml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MotionConfig:
    """Amplitudes and rates of the synthetic motion; angles in degrees, sizes in pixels at 224 px.

    The head follows a smooth random path that is damped in speech pauses; nods and brow raises
    are tied to stressed energy peaks of the speech; blinks are a Poisson process that is faster in
    pauses; the gaze jumps between random targets. All of it is written as per-frame truth.
    """

    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    translate_px: float
    scale: float
    nod_deg: float
    brow_px: float
    mouth_px: float
    blink_rate_speech_hz: float
    blink_rate_pause_hz: float
    gaze_shift_hz: float
    gaze_px: float
    pause_stillness: float


@dataclass(frozen=True)
class ReliefConfig:
    """The face's depth relief, toward the camera: a half-ellipsoid over the face, ``face`` × its half-width
    high, plus a Gaussian nose bump, ``nose`` × the distance of the outer eye corners high. 0 and 0 is a flat
    plane, on which a turn of the head only narrows the face (the same for left and right); with relief the
    nose moves against the eyes (parallax), so yaw's sign shows, as on real faces (``relief.py``)."""

    face: float = 0.0
    nose: float = 0.0

    def __post_init__(self) -> None:
        if self.face < 0 or self.nose < 0:
            raise ValueError(f"corpus.relief needs face >= 0 and nose >= 0, got {self}")


@dataclass(frozen=True)
class SpeechConfig:
    """espeak-ng voices and the ranges from which each clip draws its rate and pitch."""

    voices: tuple[str, ...]
    rate_wpm: tuple[int, int]
    pitch: tuple[int, int]
    gap_seconds: tuple[float, float]


@dataclass(frozen=True)
class CorpusConfig:
    """What ``thpad sample-corpus`` writes: a VoxCeleb2-shaped corpus with per-clip motion truth.

    ``identities`` identities with ``clips`` clips each, ``seconds`` long. Identities are variants of
    a few real portraits; ``test_portraits`` whole source portraits go to ``test/mp4`` so that no
    portrait straddles the dev and test splits.
    """

    identities: int
    clips: int
    seconds: float
    seed: int
    test_portraits: int
    size: int
    fps: int
    sample_rate: int
    videos_per_identity: int
    workers: int
    crf: int
    speech: SpeechConfig
    motion: MotionConfig
    relief: ReliefConfig = ReliefConfig()
