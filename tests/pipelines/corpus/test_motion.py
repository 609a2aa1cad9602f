"""Motion truth is tied to the audio: mouth follows the envelope, stillness and blinks in pauses."""

from __future__ import annotations

import numpy as np

from thpad.pipelines.corpus.motion import frame_envelope, make_motion


def _speech_like_envelope(rng: np.random.Generator, fps: int = 25, seconds: int = 200) -> np.ndarray:
    """Alternating 2 s of syllable-like bursts and 1.5 s of silence."""
    t = np.arange(fps * seconds) / fps
    speaking = (t % 3.5) < 2.0
    syllables = 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * 2.5 * t + rng.uniform(0, 6)))
    return (speaking * syllables * 0.2).astype(np.float32)


def test_frame_envelope_locates_a_burst() -> None:
    audio = np.zeros(16000, np.float32)
    audio[6400:7040] = 0.5  # exactly video frame 10 at 25 fps (samples 6400..7039)
    env = frame_envelope(audio, 16000, 25, 25)
    assert int(np.argmax(env)) == 10 and env[9] == 0 and env[11] == 0


def test_motion_is_tied_to_speech(micro_params) -> None:
    rng = np.random.default_rng(0)
    env = _speech_like_envelope(rng)
    motion = make_motion(env, 25, micro_params.corpus.motion, rng)
    speaking = motion.speaking > 0.5
    assert np.corrcoef(motion.mouth, env)[0, 1] > 0.8
    head_speed = np.abs(np.diff(motion.yaw, prepend=motion.yaw[0]))
    assert head_speed[~speaking].mean() < 0.5 * head_speed[speaking].mean()
    blink_starts = np.flatnonzero((motion.blink[1:] > 0) & (motion.blink[:-1] == 0)) + 1
    pause_rate = (~speaking[blink_starts]).sum() / (~speaking).sum()
    speech_rate = speaking[blink_starts].sum() / speaking.sum()
    assert pause_rate > 1.5 * speech_rate
    assert motion.events and all(speaking[e["frame"]] for e in motion.events)
