"""``thpad generate`` inputs (docs/paper-notes.md §2.1, §2.2) on real portraits shipped in installed packages
and real espeak-ng speech: every photo format aligns onto the template, every audio format decodes to 16 kHz,
and every bad input is refused with an ``InputError`` that names the file."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import matplotlib.cbook
import numpy as np
import pytest
import skimage.data
import soxr
from PIL import Image

from thpad.pipelines.generate.inputs import (
    InputError,
    Portrait,
    align_portrait,
    detect_faces,
    load_image,
    load_speech,
)
from thpad.pipelines.media.align import key_centres, template_points
from thpad.pipelines.media.audio import load_pcm, resample_pcm
from thpad.pipelines.media.config import AlignConfig, AudioConfig, TrackConfig
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.media.video import write_video

TRACK, ALIGN, AUDIO = TrackConfig(), AlignConfig(), AudioConfig()
RATES = (8_000, 192_000)
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def hopper() -> np.ndarray:
    """Grace Hopper (matplotlib sample data), (600, 512, 3) uint8 RGB, one face of ~190 px."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """Eileen Collins (scikit-image), cropped to (300, 300, 3) around her ~90 px face (the full photo has a
    face-like false detection on the flag patch at upsample 1)."""
    return np.ascontiguousarray(skimage.data.astronaut()[0:300, 70:370])


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    """A ~3.7 s espeak-ng sentence: 22.05 kHz mono int16 wav."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed: no real speech to test with")
    path = tmp_path_factory.mktemp("speech") / "sentence.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SENTENCE], check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def speech(speech_wav) -> tuple[np.ndarray, int]:
    """The espeak wav read with the standard library: (N,) float32 in [-1, 1] and its rate."""
    with wave.open(str(speech_wav)) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1
        raw = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        return raw.astype(np.float32) / 32768.0, w.getframerate()


# ---------------------------------------------------------------------------------------------------- helpers


def eyes_in_crop(portrait: Portrait) -> np.ndarray:
    """The right- and left-eye centres (2, 2) of the portrait's landmarks mapped into the crop."""
    points = portrait.landmarks @ portrait.xform[:, :2].T + portrait.xform[:, 2]  # (68, 2)
    return key_centres(points)[:2]


def assert_on_template(portrait: Portrait, tol: float = 3.0) -> None:
    """Crop (224, 224, 3); eye centres within ``tol`` px of (87, 59) / (137, 59); the three key centres' mean
    exactly on the template's mean (a least-squares similarity maps centroid onto centroid). The eyes' offset is
    the similarity's misfit to each face's proportions: ~2.3 px for Hopper, ~3.7 px for the astronaut."""
    assert portrait.aligned.shape == (224, 224, 3) and portrait.aligned.dtype == np.uint8
    assert portrait.xform.shape == (2, 3) and portrait.xform.dtype == np.float64
    assert portrait.landmarks.shape == (68, 2) and portrait.landmarks.dtype == np.float32
    offsets = np.linalg.norm(eyes_in_crop(portrait) - template_points(ALIGN)[:2], axis=1)
    assert offsets.max() < tol, f"eye centres off the template by {offsets}"
    points = portrait.landmarks @ portrait.xform[:, :2].T + portrait.xform[:, 2]
    np.testing.assert_allclose(key_centres(points).mean(axis=0), template_points(ALIGN).mean(axis=0), atol=0.05)


def save(rgb: np.ndarray, path: Path, mode: str = "RGB", **kwargs) -> Path:
    Image.fromarray(rgb).convert(mode).save(path, **kwargs)
    return path


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """(N,) float in [-1, 1] -> 16-bit mono wav."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
    return path


def encode_audio(path: Path, samples: np.ndarray, rate: int, codec: str, fmt: str, container: str | None = None
                 ) -> Path:
    """(2, N) float32 stereo -> an audio file written by PyAV (``fmt`` is the frame's sample format)."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="stereo")
        if fmt == "s16":
            data = (np.clip(samples, -1, 1).T.reshape(1, -1) * 32767).astype(np.int16)  # (1, 2N) packed
        else:
            data = np.ascontiguousarray(samples.T.reshape(1, -1), np.float32)  # (1, 2N) packed flt
        frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def envelope(x: np.ndarray, hop: int = 160) -> np.ndarray:
    """RMS per 10 ms at 16 kHz: (N // hop,)."""
    n = len(x) // hop
    return np.sqrt(np.mean(x[: n * hop].reshape(n, hop) ** 2, axis=1))


def envelope_corr(a: np.ndarray, b: np.ndarray) -> float:
    ea, eb = envelope(a), envelope(b)
    n = min(len(ea), len(eb))
    return float(np.corrcoef(ea[:n], eb[:n])[0, 1])


# ---------------------------------------------------------------------------------------------------- photos


FORMATS = {
    "jpeg": ("photo.jpg", "RGB", {"quality": 92}),
    "png": ("photo.png", "RGB", {}),
    "webp": ("photo.webp", "RGB", {"quality": 90}),
    "bmp": ("photo.bmp", "RGB", {}),
    "grey": ("photo_grey.png", "L", {}),
    "rgba": ("photo_rgba.png", "RGBA", {}),
    "cmyk": ("photo_cmyk.jpg", "CMYK", {"quality": 92}),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_photo_format_aligns_onto_the_template(fmt, hopper, landmarker, tmp_path) -> None:
    filename, mode, options = FORMATS[fmt]
    rgb = hopper
    if mode == "RGBA":  # a transparent corner, which must come back white
        rgba = np.dstack([hopper, np.full(hopper.shape[:2], 255, np.uint8)])
        rgba[:40, :40, 3] = 0
        rgb = rgba
    path = save(rgb, tmp_path / filename, mode, **options)
    image = load_image(path)
    assert image.shape == (600, 512, 3) and image.dtype == np.uint8
    diff = np.abs(image.astype(int) - hopper).mean()
    assert diff < (25 if mode == "L" else 4), f"{fmt} loads {diff:.1f} gray levels away from the photo"
    if mode == "L":
        assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    if mode == "RGBA":
        assert (image[:40, :40] == 255).all() and np.abs(image[100:].astype(int) - hopper[100:]).max() == 0
    portrait = align_portrait(image, landmarker, TRACK, ALIGN, name=str(path))
    assert_on_template(portrait)
    assert 150 < portrait.box[2] - portrait.box[0] < 230 and portrait.other_boxes == ()
    assert portrait.image is image


def test_exif_orientation_is_applied(hopper, landmarker, tmp_path) -> None:
    """A JPEG stored on its side with EXIF orientation 6 loads upright and aligns like the upright JPEG."""
    upright = load_image(save(hopper, tmp_path / "upright.jpg", quality=92))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    on_side = np.ascontiguousarray(np.rot90(hopper, k=1))  # stored turned 90 degrees counter-clockwise
    path = save(on_side, tmp_path / "phone.jpg", quality=92, exif=exif.tobytes())
    assert Image.open(path).size == (600, 512)  # really on its side on disk
    image = load_image(path)
    assert image.shape == (600, 512, 3)
    assert np.abs(image.astype(int) - upright).mean() < 3
    crop, reference = (align_portrait(x, landmarker, TRACK, ALIGN).aligned for x in (image, upright))
    assert np.abs(crop.astype(int) - reference).mean() < 12


def test_crop_shows_the_face_where_xform_puts_it(astronaut, landmarker) -> None:
    """The detector run on the aligned crop finds the eyes where ``xform`` maps the photo's landmarks, so the
    warp and the transform agree; and the astronaut also lands on the template."""
    portrait = align_portrait(astronaut, landmarker, TRACK, ALIGN)
    assert_on_template(portrait, tol=4.5)
    found = landmarker.detect(portrait.aligned, 1)
    assert found, "no face in the aligned crop"
    offsets = np.linalg.norm(key_centres(found[0].landmarks)[:2] - eyes_in_crop(portrait), axis=1)
    assert offsets.max() < 3.0


def test_array_and_special_mode_conversions(tmp_path) -> None:
    grey = np.tile(np.arange(64, dtype=np.uint8)[None] * 4, (48, 1))  # (48, 64)
    out = load_image(grey)
    assert out.shape == (48, 64, 3) and (out == grey[:, :, None]).all()
    rgba = np.zeros((40, 50, 4), np.float32)
    rgba[..., 0], rgba[:, :25, 3], rgba[:, 25:, 3] = 1.0, 1.0, 0.0  # red, right half transparent
    out = load_image(rgba)
    assert (out[:, :25] == [255, 0, 0]).all() and (out[:, 25:] == 255).all()
    deep = Image.fromarray(np.full((40, 40), 32768, np.uint16))  # 16-bit grey at half scale
    deep.save(tmp_path / "deep.png")
    assert np.abs(load_image(tmp_path / "deep.png").astype(int) - 128).max() <= 1
    palette = Image.new("P", (40, 40), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 20, 40))
    palette.save(tmp_path / "palette.png", transparency=0)  # index 0 (black) is transparent
    out = load_image((tmp_path / "palette.png").read_bytes())
    assert (out[:, :20] == [255, 0, 0]).all() and (out[:, 20:] == 255).all()
    with pytest.raises(InputError, match="outside"):
        load_image(np.full((40, 40, 3), 2.0))


def test_two_faces(hopper, astronaut, landmarker) -> None:
    """Hopper (~190 px face) beside the astronaut (~90 px face): largest by default, the other on request."""
    canvas = np.full((600, 512 + 300, 3), 128, np.uint8)
    canvas[:, :512], canvas[150:450, 512:] = hopper, astronaut
    big = align_portrait(canvas, landmarker, TRACK, ALIGN, name="pair.png")
    assert big.box[2] < 512 and big.box[2] - big.box[0] > 150
    assert len(big.other_boxes) == 1 and big.other_boxes[0][0] > 512
    assert_on_template(big)
    small = align_portrait(canvas, landmarker, TRACK, ALIGN, face=1, name="pair.png")
    assert small.box == big.other_boxes[0] and small.other_boxes == (big.box,)
    assert_on_template(small, tol=4.5)
    reject = dataclasses.replace(TRACK, multi_face_policy="reject")
    with pytest.raises(InputError, match="pair.png") as err:
        align_portrait(canvas, landmarker, reject, ALIGN, name="pair.png")
    assert str(big.box) in str(err.value) and str(small.box) in str(err.value)
    with pytest.raises(InputError, match=r"face 5 .*2 face") as err:
        align_portrait(canvas, landmarker, TRACK, ALIGN, face=5, name="pair.png")
    assert str(big.box) in str(err.value)


def test_retry_on_a_large_photo_runs_downscaled_and_maps_back(astronaut, landmarker) -> None:
    """A ~48 px face in a 1500 px photo: missed at upsample 0, found by the retry on a 1000 px copy at
    upsample 1, with its box and full-resolution landmarks in photo pixels."""
    scale, (x0, y0) = 160 / 300, (600, 400)
    canvas = np.full((1100, 1500, 3), 120, np.uint8)
    canvas[y0:y0 + 160, x0:x0 + 160] = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)
    assert landmarker.detect(canvas, 0) == []
    faces = detect_faces(canvas, landmarker, 0)
    assert len(faces) == 1
    expected = key_centres(landmarker.detect(astronaut, 1)[0].landmarks) * scale + [x0, y0]  # (3, 2)
    assert np.linalg.norm(key_centres(faces[0].landmarks) - expected, axis=1).max() < 3.0
    small = cv2.resize(canvas, (1000, 733), interpolation=cv2.INTER_AREA)  # the retry's copy, 1000 px long
    box = landmarker.detect(small, 1)[0].box
    sx, sy = 1500 / 1000, 1100 / 733
    assert faces[0].box == tuple(round((v + 0.5) * s - 0.5) for v, s in zip(box, (sx, sy, sx, sy), strict=True))
    left, top, right, bottom = faces[0].box
    assert x0 < left < right < x0 + 160 and y0 < top < bottom < y0 + 160 and 40 < faces[0].size < 70
    track = TrackConfig(detect_upsample=0, min_face_size=40)
    assert_on_template(align_portrait(canvas, landmarker, track, ALIGN), tol=5.0)


def test_photo_refusals_name_the_file(astronaut, landmarker, tmp_path) -> None:
    coffee = save(skimage.data.coffee(), tmp_path / "coffee.png")
    with pytest.raises(InputError, match=r"no face found in .*coffee\.png"):
        align_portrait(load_image(coffee), landmarker, TRACK, ALIGN, name=str(coffee))
    gradient = np.tile(np.linspace(0, 255, 400, dtype=np.float32)[None, :, None], (300, 1, 3)).astype(np.uint8)
    with pytest.raises(InputError, match="no face found in gradient"):
        align_portrait(gradient, landmarker, TRACK, ALIGN, name="gradient")
    tiny = save(cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA), tmp_path / "tiny.png")
    with pytest.raises(InputError, match=r"tiny\.png .* px, below the minimum 64 px"):
        align_portrait(load_image(tiny), landmarker, TRACK, ALIGN, name=str(tiny))

    jpeg = save(astronaut, tmp_path / "whole.jpg").read_bytes()
    cases = {
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "notes.jpg": b"this is a text file, not a photo\n" * 20,
        "empty.jpg": b"",
    }
    for filename, data in cases.items():
        (tmp_path / filename).write_bytes(data)
        with pytest.raises(InputError, match=filename.replace(".", r"\.")):
            load_image(tmp_path / filename)
    with pytest.raises(InputError, match="missing.jpg does not exist"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(InputError, match=r"small\.png is 10x10 px, smaller than 32"):
        load_image(save(astronaut[:10, :10], tmp_path / "small.png"))
    with pytest.raises(InputError, match=r"whole\.jpg .* megapixels"):
        load_image(tmp_path / "whole.jpg", max_pixels=50_000)
    with pytest.raises(InputError, match="photo bytes"):
        load_image(cases["truncated.jpg"])


# ---------------------------------------------------------------------------------------------------- speech


def test_wav_resamples_exactly_as_preprocessing(speech_wav, speech) -> None:
    samples, rate = speech
    assert rate == 22050
    pcm = load_speech(speech_wav, AUDIO)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(len(pcm) - len(samples) * 16000 / rate) <= 160
    np.testing.assert_array_equal(pcm, resample_pcm(samples, rate, AUDIO, RATES))
    assert 0.3 < np.abs(pcm).max() <= 1.0  # int16 scaled to [-1, 1]
    np.testing.assert_array_equal(load_speech(speech_wav.read_bytes(), AUDIO), pcm)
    np.testing.assert_array_equal(load_speech(samples, AUDIO, sample_rate=rate), pcm)
    int16 = (samples * 32768).astype(np.int16)
    np.testing.assert_array_equal(load_speech(int16, AUDIO, sample_rate=rate), pcm)


def test_compressed_and_stereo_formats_decode(speech_wav, speech, tmp_path) -> None:
    samples, rate = speech
    reference = load_speech(speech_wav, AUDIO)
    s44 = soxr.resample(samples, rate, 44100).astype(np.float32)
    flac = encode_audio(tmp_path / "stereo.flac", np.stack([s44, 0.5 * s44]), 44100, "flac", "s16")
    pcm = load_speech(flac, AUDIO)
    assert abs(len(pcm) - len(reference)) <= 160
    n = min(len(pcm), len(reference))
    np.testing.assert_allclose(pcm[:n], 0.75 * reference[:n], atol=0.01)  # mono = mean of the two channels
    s48 = soxr.resample(samples, rate, 48000).astype(np.float32)
    encoded = 0
    lossy = [("speech.opus", "libopus", 48000, s48), ("speech.ogg", "libopus", 48000, s48),
             ("speech.mp3", "libmp3lame", 44100, s44)]
    for filename, codec, rate_out, source in lossy:
        try:
            path = encode_audio(tmp_path / filename, np.stack([source, source]), rate_out, codec, "flt")
        except (av.error.FFmpegError, ValueError) as err:
            print(f"PyAV cannot encode {filename} with {codec} here ({err}); not tested")
            continue
        pcm = load_speech(path, AUDIO)
        assert abs(len(pcm) - len(reference)) < 0.1 * AUDIO.sample_rate, filename
        assert envelope_corr(pcm, reference) > 0.95, filename
        encoded += 1
    if encoded == 0:
        pytest.skip("PyAV can encode neither opus nor mp3 here")


def test_video_audio_track_matches_preprocessing(speech_wav, tmp_path) -> None:
    reference = load_speech(speech_wav, AUDIO)
    frames = [np.full((64, 64, 3), 40 * i, np.uint8) for i in range(5)]
    video = write_video(tmp_path / "talk.mp4", frames, fps=25, audio=reference, sample_rate=16000)
    pcm = load_speech(video, AUDIO)
    np.testing.assert_array_equal(pcm, load_pcm(video, AUDIO, RATES))  # the preprocessing decoder
    assert abs(len(pcm) - len(reference)) < 0.1 * AUDIO.sample_rate
    assert envelope_corr(pcm, reference) > 0.95


def test_speech_refusals_name_the_file(speech, tmp_path) -> None:
    samples, rate = speech
    start = len(samples) // 2
    cases = {
        "quiet.wav": (write_wav(tmp_path / "quiet.wav", np.zeros(rate), rate), "is silent"),
        "short.wav": (write_wav(tmp_path / "short.wav", samples[start:start + rate // 10], rate), "shorter than"),
        "mute.mp4": (write_video(tmp_path / "mute.mp4", [np.zeros((64, 64, 3), np.uint8)] * 5, fps=25),
                     "has no audio track"),
        "noise.wav": (tmp_path / "noise.wav", "is not a readable audio"),
        "empty.m4a": (tmp_path / "empty.m4a", "is empty"),
        "missing.wav": (tmp_path / "missing.wav", "does not exist"),
    }
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(4096))
    (tmp_path / "empty.m4a").write_bytes(b"")
    for filename, (path, message) in cases.items():
        with pytest.raises(InputError, match=message) as err:
            load_speech(path, AUDIO)
        assert filename in str(err.value)
    long = tmp_path / "long.wav"
    with pytest.raises(InputError, match=r"long\.wav is longer than the maximum 2 s"):  # stops decoding early
        load_speech(write_wav(long, samples, rate), AUDIO, max_seconds=2.0)
    with pytest.raises(InputError, match=r"long\.wav is 3\.\d+ s long, longer than the maximum 3\.5 s"):
        load_speech(long, AUDIO, max_seconds=3.5)
    with pytest.raises(InputError, match="clip.npy is an array without a sample rate"):
        load_speech(samples, AUDIO, name="clip.npy")
    broken = samples.copy()
    broken[100] = np.nan
    with pytest.raises(InputError, match="speech array contains NaN"):
        load_speech(broken, AUDIO, sample_rate=rate)
    with pytest.raises(InputError, match="4000 Hz, outside 8000-192000"):
        load_speech(samples, AUDIO, sample_rate=4000)
    with pytest.raises(InputError, match=r"shape \(\d+, 2\)"):
        load_speech(np.stack([samples, samples], axis=1), AUDIO, sample_rate=rate)
