"""Real speech for the sample corpus, synthesised by espeak-ng with varied voices, rates and pitches.

Each clip is a few sentences spoken separately and joined with silent gaps, so that clips have
real pauses (which the motion model uses: stillness and more blinks in pauses).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from thpad.pipelines.corpus.config import SpeechConfig

# Sentences written for this corpus; plain, varied in length and stress.
SENTENCES: tuple[str, ...] = (
    "The morning train was late again, so we walked along the river.",
    "Please put the blue folder on the top shelf before you leave.",
    "I never thought the garden would grow this quickly in spring.",
    "Could you tell me where the nearest library is?",
    "We measured the water twice and the numbers still did not match.",
    "My brother keeps an old radio that still works perfectly.",
    "That is absolutely not what I asked for!",
    "The concert starts at eight, but the doors open at seven.",
    "She painted the kitchen yellow and the hallway a soft grey.",
    "Honestly, the second half of the film was much better.",
    "Turn left at the bakery and keep going until the bridge.",
    "A small dog followed us all the way home from the park.",
    "We should check the weather before we plan the trip.",
    "The results were surprising, and nobody could explain them.",
    "Bring a warm coat, because the wind on the hill is strong.",
    "He laughed so hard that everyone in the room turned around.",
    "The printer on the third floor is broken once more.",
    "Let us begin with the simplest question and work upwards.",
    "Fresh bread, cold butter and a cup of tea: perfect.",
    "I will call you back as soon as the meeting is over.",
    "Nobody expected the quiet student to win the debate.",
    "The map was wrong, so we followed the stars instead.",
    "Every Tuesday the market fills the square with colour.",
    "Really? You finished the whole book in one night?",
)


@dataclass(frozen=True)
class Utterance:
    """A spoken clip: mono float32 audio at ``sample_rate`` and how it was made."""

    audio: np.ndarray
    sample_rate: int
    voice: str
    rate_wpm: int
    pitch: int
    text: tuple[str, ...]
    speech_spans: tuple[tuple[float, float], ...]


def require_espeak() -> str:
    """The espeak-ng executable, or a clear error saying how to install it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed: run `make setup` (or `apt-get install espeak-ng`)")
    return exe


def synthesize(text: str, voice: str, rate_wpm: int, pitch: int, sample_rate: int) -> np.ndarray:
    """Speak ``text`` with espeak-ng and return (N,) float32 mono audio resampled to ``sample_rate``."""
    cmd = [require_espeak(), "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False, timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode(errors='replace')}")
    audio, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    return soxr.resample(audio, rate, sample_rate).astype(np.float32)


def speak_clip(cfg: SpeechConfig, seconds: float, sample_rate: int, rng: np.random.Generator) -> Utterance:
    """Sentences with random silent gaps, until ``seconds`` are filled; the last one is cut and faded.

    Returns:
        An ``Utterance`` of exactly ``round(seconds * sample_rate)`` samples.
    """
    voice = str(rng.choice(cfg.voices))
    rate = int(rng.integers(cfg.rate_wpm[0], cfg.rate_wpm[1] + 1))
    pitch = int(rng.integers(cfg.pitch[0], cfg.pitch[1] + 1))
    total = int(round(seconds * sample_rate))
    pieces, spans, texts, pos = [], [], [], 0
    while pos < total:
        gap = np.zeros(int(rng.uniform(*cfg.gap_seconds) * sample_rate), np.float32)
        text = str(rng.choice(SENTENCES))
        speech = _trim_silence(synthesize(text, voice, rate, pitch, sample_rate))
        pieces += [gap, speech]
        start = pos + len(gap)
        if start < total:
            spans.append((start / sample_rate, min(start + len(speech), total) / sample_rate))
            texts.append(text)
        pos = start + len(speech)
    audio = np.concatenate(pieces)[:total]
    fade = min(len(audio), sample_rate // 20)
    audio[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    audio = 0.5 * audio / max(float(np.abs(audio).max()), 1e-6)
    return Utterance(audio, sample_rate, voice, rate, pitch, tuple(texts), tuple(spans))


def _trim_silence(audio: np.ndarray, threshold: float = 1e-3) -> np.ndarray:
    loud = np.flatnonzero(np.abs(audio) > threshold)
    return audio[loud[0]: loud[-1] + 1] if len(loud) else audio
