"""Audio loading, resampling and the PC-AVS mel spectrogram (docs/paper-notes.md §2.1).

The mel is computed with a numpy STFT and librosa's Slaney mel filterbank written out in numpy (librosa's
STFT and resamplers compile numba code for ~18 s in a fresh process, and even its filters module costs
~1.7 s to import). Timing convention, shared with ``storage.windows``: mel bin ``k`` is
centred at time ``k * hop / sample_rate`` (``center=True``), so video frame ``t`` at 25 fps owns bins
4t .. 4t+3, which are centred at 0, 10, 20 and 30 ms into its 40 ms display interval.

1. Mix to mono and resample to 16 kHz with soxr (rates outside the caller's range are rejected).
2. Scale the clip to RMS 0.1 (PC-AVS ``norm_audio``).
3. STFT magnitude (n_fft 1280, hop 160, periodic Hann window), then the 80-band mel filterbank.
4. 20*log10(max(1e-5, mel)) - 20 dB, then clip((S + 100) / 100, 0, 1).
5. Pad (with 0, the silence level) or trim to exactly 4 bins per video frame.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import soxr

from thpad.pipelines.media.config import AudioConfig, bins_per_frame, samples_per_frame
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.video import read_audio


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Mix audio to mono float32.

    Args:
        audio: (N,) mono or (C, N) channels-first samples (PyAV's planar layout).
    Returns:
        (N,) float32.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        return audio.mean(axis=0)  # (C, N) -> (N,)
    raise ValueError(f"audio must be (N,) or (C, N), got shape {audio.shape}")


def resample_pcm(audio: np.ndarray, rate: int, cfg: AudioConfig,
                 sample_rate_range: tuple[int, int]) -> np.ndarray:
    """Mix to mono and resample to ``cfg.sample_rate`` with soxr (high quality, no time shift).

    Args:
        audio: (N,) or (C, N) samples at ``rate``.
        rate: the input rate in Hz.
        cfg: audio parameters (the target rate).
        sample_rate_range: (lowest, highest) accepted input rate in Hz, inclusive.
    Returns:
        (M,) float32 at ``cfg.sample_rate``, M = round(N * cfg.sample_rate / rate).
    Raises:
        RejectClip: the input rate is outside ``sample_rate_range``.
    """
    low, high = sample_rate_range
    if not low <= rate <= high:
        raise RejectClip(f"audio sample rate {rate} Hz is outside the accepted range {low}-{high} Hz")
    mono = to_mono(audio)
    if rate == cfg.sample_rate or len(mono) == 0:
        return mono
    return soxr.resample(mono, rate, cfg.sample_rate, quality="HQ").astype(np.float32)


def load_pcm(path: str | Path, cfg: AudioConfig, sample_rate_range: tuple[int, int]) -> np.ndarray:
    """Decode the first audio track of a media file (PyAV) as mono at ``cfg.sample_rate``.

    Args:
        path: any container PyAV reads (mp4, m4a, wav...).
        cfg: audio parameters.
        sample_rate_range: (lowest, highest) accepted input rate in Hz.
    Returns:
        (N,) float32 mono samples.
    Raises:
        RejectClip: no audio track, no samples, or a rate outside the range.
    """
    audio, rate = read_audio(path)
    if audio is None or rate is None:
        raise RejectClip(f"{Path(path).name}: no audio track")
    if len(audio) == 0:
        raise RejectClip(f"{Path(path).name}: the audio track is empty")
    return resample_pcm(audio, rate, cfg, sample_rate_range)


def rms_normalise(audio: np.ndarray, target: float, floor: float) -> np.ndarray:
    """Scale (N,) audio so its RMS is ``target``; an RMS below ``floor`` is treated as ``floor``."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if len(audio) else 0.0
    return (audio * (target / max(rms, floor))).astype(np.float32)


def stft_magnitude(audio: np.ndarray, cfg: AudioConfig) -> np.ndarray:
    """Centred STFT magnitude: frame ``k`` is centred on sample ``k * hop``.

    Args:
        audio: (N,) float32 mono.
        cfg: n_fft, win, hop and pad_mode.
    Returns:
        (n_fft // 2 + 1, 1 + N // hop) float32 magnitudes.
    """
    half = cfg.n_fft // 2
    padded = np.pad(audio.astype(np.float32), half, mode=cfg.pad_mode)  # (N + n_fft,)
    window = np.zeros(cfg.n_fft, np.float32)
    offset = (cfg.n_fft - cfg.win) // 2
    window[offset: offset + cfg.win] = np.hanning(cfg.win + 1)[:-1]  # periodic Hann, centred in n_fft
    frames = np.lib.stride_tricks.sliding_window_view(padded, cfg.n_fft)[:: cfg.hop]  # (1 + N // hop, n_fft)
    spectrum = np.fft.rfft(frames * window, axis=1)  # (1 + N // hop, n_fft // 2 + 1)
    return np.abs(spectrum).T.astype(np.float32)  # (n_fft // 2 + 1, 1 + N // hop)


SLANEY_HZ_PER_MEL = 200.0 / 3  # Slaney's mel scale: linear below 1 kHz ...
SLANEY_LOG_START_HZ = 1000.0
SLANEY_LOG_STEP = math.log(6.4) / 27.0  # ... and logarithmic above it


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Frequencies in Hz on Slaney's mel scale (librosa's default, ``htk=False``)."""
    hz = np.asarray(hz, np.float64)
    linear = hz / SLANEY_HZ_PER_MEL
    log_start = SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL
    above = log_start + np.log(np.maximum(hz, SLANEY_LOG_START_HZ) / SLANEY_LOG_START_HZ) / SLANEY_LOG_STEP
    return np.where(hz >= SLANEY_LOG_START_HZ, above, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """The inverse of ``hz_to_mel``."""
    mel = np.asarray(mel, np.float64)
    log_start = SLANEY_LOG_START_HZ / SLANEY_HZ_PER_MEL
    above = SLANEY_LOG_START_HZ * np.exp(SLANEY_LOG_STEP * (np.maximum(mel, log_start) - log_start))
    return np.where(mel >= log_start, above, SLANEY_HZ_PER_MEL * mel)


@functools.lru_cache(maxsize=8)
def mel_filterbank(cfg: AudioConfig) -> np.ndarray:
    """Slaney's area-normalised triangular mel filterbank (n_mels, n_fft // 2 + 1) float32, as PC-AVS builds it
    with librosa (``librosa.filters.mel`` with its defaults; the tests check they agree). Written out here
    because importing librosa's filters costs ~1.7 s per process (scipy.signal), paid by every preprocessing
    worker. Cached per config; the array is read-only."""
    fft_hz = np.fft.rfftfreq(cfg.n_fft, 1.0 / cfg.sample_rate)  # (n_fft // 2 + 1,)
    edges = mel_to_hz(np.linspace(hz_to_mel(cfg.fmin), hz_to_mel(cfg.fmax), cfg.n_mels + 2))  # (n_mels + 2,)
    widths = np.diff(edges)  # (n_mels + 1,)
    ramps = edges[:, None] - fft_hz[None, :]  # (n_mels + 2, n_fft // 2 + 1)
    weights = np.zeros((cfg.n_mels, len(fft_hz)), np.float32)  # (n_mels, n_fft // 2 + 1)
    for i in range(cfg.n_mels):
        rising, falling = -ramps[i] / widths[i], ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights.setflags(write=False)
    return weights


def mel_spectrogram(audio: np.ndarray, cfg: AudioConfig, num_frames: int | None = None) -> np.ndarray:
    """The PC-AVS [0, 1] mel spectrogram, exactly ``bins_per_frame`` bins per video frame.

    Args:
        audio: (N,) float32 mono at ``cfg.sample_rate``.
        cfg: audio parameters.
        num_frames: video frames T the mel must cover; None means ceil(N / samples_per_frame).
    Returns:
        (n_mels, bins_per_frame * T) float32 in [0, 1]; bins past the end of the audio are 0 (silence).
    """
    if num_frames is None:
        num_frames = math.ceil(len(audio) / samples_per_frame(cfg))
    if cfg.rms_target is not None:
        audio = rms_normalise(audio, cfg.rms_target, cfg.rms_floor)
    mel = mel_filterbank(cfg) @ stft_magnitude(audio, cfg)  # (n_mels, 1 + N // hop)
    level = 20.0 * np.log10(np.maximum(1e-5, mel)) - cfg.ref_level_db
    scaled = np.clip((level - cfg.min_level_db) / -cfg.min_level_db, 0.0, 1.0).astype(np.float32)
    width = bins_per_frame(cfg) * num_frames
    out = np.zeros((cfg.n_mels, width), np.float32)  # (n_mels, 4T)
    keep = min(width, scaled.shape[1])
    out[:, :keep] = scaled[:, :keep]
    return out
