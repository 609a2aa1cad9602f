"""Parameters of the per-clip media preprocessing: audio features (docs/paper-notes.md §2.1), face tracking
and PC-AVS alignment (docs/paper-notes.md §2.2).

Every default is PC-AVS's value where PC-AVS has one (its ``config/AudioConfig.py`` and
``scripts/align_68.py``); the other defaults are ours and say so. Values derived from these (bins
and samples per video frame) are computed in exactly one function each, at the bottom of this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# dlib 68-point indices whose position does not move with speech: the four eye corners (36, 39 on
# the subject's right eye, 42, 45 on the left) and the nose bridge (27-30). The mouth, the jaw and
# the lower nose are left out on purpose: their motion would leak into the per-frame translation.
STABLE_POINTS = (36, 39, 42, 45, 27, 28, 29, 30)


@dataclass(frozen=True)
class AudioConfig:
    """The PC-AVS mel spectrogram: 16 kHz, 80 mels, 100 bins/s, 4 bins per 25 fps video frame.

    Attributes:
        sample_rate: audio rate in Hz every clip is resampled to (PC-AVS: 16000).
        n_mels: mel channels (PC-AVS: 80).
        hop: STFT hop in samples; 160 = 10 ms, so bin ``k`` is centred at ``k * hop / sample_rate``.
        n_fft: FFT size in samples (PC-AVS: 1280 = 80 ms).
        win: analysis window length in samples (PC-AVS: the whole FFT, 1280); a periodic Hann
            window, zero-padded to ``n_fft`` when shorter. PC-AVS's ``lws`` uses its own window;
            the paper is silent, Hann is ours.
        fmin: lowest mel filter edge in Hz (PC-AVS: 125).
        fmax: highest mel filter edge in Hz (PC-AVS: 7600).
        ref_level_db: dB subtracted after the amplitude-to-dB step (PC-AVS: 20).
        min_level_db: the dB floor that maps to 0 in the [0, 1] scaling (PC-AVS: -100).
        rms_target: the whole clip is scaled to this RMS before the STFT (PC-AVS ``norm_audio``:
            0.1); None turns the normalisation off.
        rms_floor: quieter clips are scaled as if their RMS were this (ours: 1e-4, i.e. -80 dBFS),
            so that near-silence is not amplified into loud noise.
        fps: video frame rate the audio is aligned to (PC-AVS and VoxCeleb2: 25).
        frames_per_window: video frames per audio window (PC-AVS: 5, i.e. 20 bins = 0.2 s).
        pad_mode: how the STFT pads half a window before the first and after the last sample
            (``center=True``). "constant" (ours) pads with silence, which agrees with the zero-filled
            out-of-range windows of ``storage.windows.mel_window``; "reflect" mirrors the edge audio.
    """

    sample_rate: int = 16000
    n_mels: int = 80
    hop: int = 160
    n_fft: int = 1280
    win: int = 1280
    fmin: float = 125.0
    fmax: float = 7600.0
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    rms_target: float | None = 0.1
    rms_floor: float = 1e-4
    fps: int = 25
    frames_per_window: int = 5
    pad_mode: Literal["constant", "reflect"] = "constant"

    def __post_init__(self) -> None:
        if self.win > self.n_fft:
            raise ValueError(f"win ({self.win}) must not exceed n_fft ({self.n_fft})")
        if self.pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {self.pad_mode!r}")
        if self.min_level_db >= 0:
            raise ValueError(f"min_level_db must be negative, got {self.min_level_db}")
        bins_per_frame(self)  # fails early when the rates do not divide


@dataclass(frozen=True)
class AlignConfig:
    """PC-AVS alignment: one similarity per clip onto a 224 px template, plus a smoothed per-frame
    translation that pins the stable points (eye corners, nose bridge) in place.

    Attributes:
        size: side of the square output crop in pixels (PC-AVS and VoxCeleb2: 224).
        right_eye: template position of mean(36-41), the subject's right eye on the image left (87, 59).
        left_eye: template position of mean(42-47), the subject's left eye (137, 59).
        mouth: template position of the inner-mouth centre mean(60-67) (112, 120).
        stable_points: landmark indices that drive the per-frame translation (never the mouth).
            PC-AVS pins the mouth centre instead; we do not, so that lip motion stays in the crop
            and is not turned into head translation.
        smoothing: "ema" (PC-AVS), "gaussian" (zero lag, ours) or "none".
        ema_prev_weight: EMA weight of the previous smoothed value (PC-AVS: 0.2, so 0.8 current).
        gaussian_sigma: standard deviation in frames of the Gaussian smoothing.
        border: how the warp fills pixels outside the source frame: "constant" (black, cv2's
            default) or "replicate" / "reflect". The paper is silent; black is ours.
    """

    size: int = 224
    right_eye: tuple[float, float] = (87.0, 59.0)
    left_eye: tuple[float, float] = (137.0, 59.0)
    mouth: tuple[float, float] = (112.0, 120.0)
    stable_points: tuple[int, ...] = STABLE_POINTS
    smoothing: Literal["ema", "gaussian", "none"] = "ema"
    ema_prev_weight: float = 0.2
    gaussian_sigma: float = 1.0
    border: Literal["constant", "replicate", "reflect"] = "constant"

    def __post_init__(self) -> None:
        mouth_points = set(range(48, 68))
        if mouth_points & set(self.stable_points):
            raise ValueError(f"stable_points must not include mouth points 48-67, got {self.stable_points}")
        if self.smoothing not in ("ema", "gaussian", "none"):
            raise ValueError(f"smoothing must be 'ema', 'gaussian' or 'none', got {self.smoothing!r}")
        if not 0.0 <= self.ema_prev_weight < 1.0:
            raise ValueError(f"ema_prev_weight must be in [0, 1), got {self.ema_prev_weight}")


HOG_WINDOW_PX = 80  # dlib's frontal HOG window: no face fits a smaller image


@dataclass(frozen=True)
class TrackConfig:
    """Face tracking over a clip: detect rarely, follow the landmarks in between (ours; the paper is
    silent, PC-AVS runs FAN on every frame).

    Attributes:
        detect_upsample: dlib HOG upsampling; 1 finds faces down to ~40 px (HOG sees the frame at 2x).
        detect_max_side: on video frames, HOG's image is at most this many pixels on the longer side: a larger
            frame is resized down instead of upsampled (faces of a 1080p frame are then found from ~240 px).
        redetect_every: also run the detector every this many frames; 0: only when the tracked landmarks
            degrade (see below).
        max_search_frames: the first face must appear within this many frames, else the clip is rejected.
        min_box_iou: re-detect when the box of the tracked landmarks overlaps the previous frame's
            box less than this (adjacent frames normally overlap > 0.9).
        max_jump: re-detect when landmarks move on average more than this fraction of the face scale
            (the RMS distance of the landmarks from their centroid, ~40 px for a 224 px crop) in one frame.
        max_roll_deg: sanity check: re-detect when the eye line is tilted more than this.
        min_face_size: reject the clip when a detected face box is smaller than this many pixels.
        multi_face_policy: "largest" keeps the face overlapping the track (else the largest);
            "reject" rejects any clip where the detector sees more than one face.
        max_lost_fraction: reject the clip when more than this fraction of its frames had neither a
            sane tracked face nor a detection (those frames repeat the last good landmarks).
        landmark_backend: "dlib" (the CPU default) or "fan" (PC-AVS's FAN-68, needs ``fan_weights``).
        fan_weights: path to a local 2DFAN4 state dict; FAN is never downloaded.
    """

    detect_upsample: int = 1
    detect_max_side: int = 640
    redetect_every: int = 0
    max_search_frames: int = 10
    min_box_iou: float = 0.5
    max_jump: float = 0.25
    max_roll_deg: float = 60.0
    min_face_size: int = 64
    multi_face_policy: Literal["largest", "reject"] = "largest"
    max_lost_fraction: float = 0.1
    landmark_backend: Literal["dlib", "fan"] = "dlib"
    fan_weights: str | None = None

    def __post_init__(self) -> None:
        if self.multi_face_policy not in ("largest", "reject"):
            raise ValueError(f"multi_face_policy must be 'largest' or 'reject', got {self.multi_face_policy!r}")
        if self.landmark_backend not in ("dlib", "fan"):
            raise ValueError(f"landmark_backend must be 'dlib' or 'fan', got {self.landmark_backend!r}")
        if self.landmark_backend == "fan" and not self.fan_weights:
            raise ValueError("landmark_backend 'fan' needs fan_weights: a local 2DFAN4 weights file "
                             "(thpad never downloads model weights); use 'dlib' otherwise")
        if self.redetect_every < 0 or self.max_search_frames < 1:
            raise ValueError("redetect_every must be 0 (only when tracking degrades) or more, and "
                             "max_search_frames at least 1")
        if self.detect_max_side < HOG_WINDOW_PX:
            raise ValueError(f"detect_max_side must be at least {HOG_WINDOW_PX} px, got {self.detect_max_side}")


def bins_per_frame(cfg: AudioConfig) -> int:
    """Mel bins per video frame: sample_rate / hop / fps (16000 / 160 / 25 = 4); must be whole."""
    bins, rest = divmod(cfg.sample_rate, cfg.hop * cfg.fps)
    if rest or bins < 1:
        raise ValueError(f"sample_rate {cfg.sample_rate} is not a whole number of hops ({cfg.hop}) "
                         f"per video frame at {cfg.fps} fps")
    return bins


def samples_per_frame(cfg: AudioConfig) -> int:
    """Audio samples per video frame: bins_per_frame * hop (640 at 16 kHz and 25 fps)."""
    return bins_per_frame(cfg) * cfg.hop
