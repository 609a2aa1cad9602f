"""The PC-AVS mel pipeline (docs/paper-notes.md §2.1): the golden audio/video timing, shapes, scaling and
resampling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.signal

from thpad.pipelines.media.audio import (
    load_pcm,
    mel_filterbank,
    mel_spectrogram,
    resample_pcm,
    stft_magnitude,
    to_mono,
)
from thpad.pipelines.media.config import AudioConfig, bins_per_frame, samples_per_frame
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.video import write_video
from thpad.storage.windows import mel_window

CFG = AudioConfig()
RATES = (8000, 48000)


def _click_audio(num_frames: int, frame: int, cfg: AudioConfig, burst_ms: float = 5.0) -> np.ndarray:
    """Silence with a 5 ms burst centred in the middle of video frame ``frame``'s display interval."""
    audio = np.zeros(num_frames * samples_per_frame(cfg), np.float32)
    centre = int(round((frame + 0.5) / cfg.fps * cfg.sample_rate))
    half = int(burst_ms / 1000 * cfg.sample_rate) // 2
    audio[centre - half: centre + half] = 0.5
    return audio


def _energy(window: np.ndarray) -> np.ndarray:
    return window.sum(axis=0)  # (20,) energy per bin over the mel channels


def test_derived_sizes() -> None:
    assert bins_per_frame(CFG) == 4
    assert samples_per_frame(CFG) == 640
    with pytest.raises(ValueError, match="whole number"):
        AudioConfig(fps=30)


@pytest.mark.parametrize("frame", [2, 20, 47])
def test_golden_click_lands_in_the_centre_of_its_frame_window(frame: int) -> None:
    """GOLDEN: a click shown with frame t peaks in the centre bins (8..11 of 20) of t's window, and
    the windows of t-1 and t+1 see it exactly 4 bins later and earlier."""
    num_frames = 50
    mel = mel_spectrogram(_click_audio(num_frames, frame, CFG), CFG)
    window, valid = mel_window(mel, frame, CFG.frames_per_window, bins_per_frame(CFG))
    assert valid.all()
    peak = int(_energy(window).argmax())
    assert 8 <= peak <= 11, f"click of frame {frame} peaks at bin {peak} of its window"
    assert peak == 10  # the frame's middle is 20 ms in: bin 4t + 2
    before, _ = mel_window(mel, frame - 1, CFG.frames_per_window, bins_per_frame(CFG))
    after, _ = mel_window(mel, frame + 1, CFG.frames_per_window, bins_per_frame(CFG))
    assert int(_energy(before).argmax()) == peak + 4
    assert int(_energy(after).argmax()) == peak - 4
    np.testing.assert_array_equal(after[:, :-4], window[:, 4:])
    np.testing.assert_array_equal(before[:, 4:], window[:, :-4])


def test_mel_shape_range_and_silence() -> None:
    num_frames = 37
    audio = np.random.default_rng(0).standard_normal(num_frames * 640).astype(np.float32) * 0.1
    mel = mel_spectrogram(audio, CFG)
    assert mel.shape == (80, 4 * num_frames) and mel.dtype == np.float32
    assert 0.0 <= mel.min() and mel.max() <= 1.0 and mel.std() > 0.01
    for n in (num_frames * 640 - 300, num_frames * 640 + 500):  # short or long audio: pad or trim
        assert mel_spectrogram(audio[:n] if n < len(audio) else np.pad(audio, (0, n - len(audio))), CFG,
                               num_frames).shape == (80, 4 * num_frames)
    np.testing.assert_array_equal(mel_spectrogram(np.zeros(640 * 5, np.float32), CFG), 0.0)


def test_rms_normalisation_makes_the_mel_loudness_invariant() -> None:
    audio = np.random.default_rng(1).standard_normal(640 * 10).astype(np.float32) * 0.05
    np.testing.assert_allclose(mel_spectrogram(audio, CFG), mel_spectrogram(audio * 4.0, CFG), atol=1e-4)
    raw = dataclasses.replace(CFG, rms_target=None)
    assert not np.allclose(mel_spectrogram(audio, raw), mel_spectrogram(audio * 4.0, raw), atol=1e-2)


def test_stft_matches_scipy() -> None:
    """Cross-implementation check: our numpy STFT against scipy's (zero-padded, centred frames).
    (Checked once by hand against librosa.stft(center=True, pad_mode='constant') too: max |diff| 8e-6;
    not run here because librosa's STFT compiles numba code for ~15 s.)"""
    audio = np.random.default_rng(2).standard_normal(16000).astype(np.float32)
    _, _, z = scipy.signal.stft(audio, window="hann", nperseg=1280, noverlap=1280 - 160, boundary="zeros",
                                padded=False)
    expected = np.abs(z) * scipy.signal.get_window("hann", 1280).sum()  # undo scipy's 1/sum(window)
    np.testing.assert_allclose(stft_magnitude(audio, CFG), expected, atol=1e-3)


@pytest.mark.parametrize("rate", [44100, 48000, 22050])
def test_resampling_keeps_time(rate: int) -> None:
    """An impulse at 0.5 s stays at 0.5 s (soxr compensates its filter delay)."""
    audio = np.zeros(rate, np.float32)
    audio[rate // 2] = 1.0
    out = resample_pcm(audio, rate, CFG, RATES)
    assert len(out) == 16000 and out.dtype == np.float32
    assert abs(int(np.abs(out).argmax()) - 8000) <= 1


def test_resampling_mixes_to_mono_and_rejects_odd_rates() -> None:
    stereo = np.stack([np.ones(160, np.float32), np.zeros(160, np.float32)])  # (C, N)
    np.testing.assert_allclose(to_mono(stereo), 0.5)
    assert resample_pcm(stereo, 16000, CFG, RATES).shape == (160,)
    with pytest.raises(RejectClip, match="96000 Hz is outside") as err:
        resample_pcm(np.zeros(960), 96000, CFG, RATES)
    assert "8000-48000" in err.value.reason


def test_load_pcm_from_a_container(tmp_path) -> None:
    frames = np.zeros((5, 32, 32, 3), np.uint8)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(3200) / 16000)).astype(np.float32)
    with_audio = write_video(tmp_path / "a.mp4", frames, 25, tone, 16000)
    pcm = load_pcm(with_audio, CFG, RATES)
    assert pcm.dtype == np.float32 and abs(len(pcm) - 3200) <= 1024  # AAC pads to whole 1024-sample frames
    silent = write_video(tmp_path / "b.mp4", frames, 25)
    with pytest.raises(RejectClip, match="no audio track"):
        load_pcm(silent, CFG, RATES)


@pytest.mark.parametrize("cfg", [CFG, AudioConfig(n_mels=40, fmin=55.0, fmax=8000.0, n_fft=2048)])
def test_mel_filterbank_is_librosas(cfg: AudioConfig) -> None:
    """The filterbank written out in numpy gives librosa's (PC-AVS's) weights, to float32 rounding."""
    import librosa.filters

    expected = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin,
                                   fmax=cfg.fmax)  # (n_mels, n_fft // 2 + 1)
    ours = mel_filterbank(cfg)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-9)
    assert not ours.flags.writeable  # cached: a caller must not change it for the next one
