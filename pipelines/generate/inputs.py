"""The user-facing inputs of ``thpad generate IMAGE AUDIO``: any photo becomes the aligned face crop exactly as
preprocessing aligns video frames (docs/paper-notes.md §2.2), and any speech becomes 16 kHz mono PCM exactly as
preprocessing resamples it (docs/paper-notes.md §2.1).

Every bad input raises ``InputError``, whose message names the file and says what to do instead; errors from
Pillow, PyAV and dlib never reach the user as a raw traceback.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from thpad.pipelines.media.align import align_transforms, warp_frames
from thpad.pipelines.media.audio import resample_pcm
from thpad.pipelines.media.config import AlignConfig, AudioConfig, TrackConfig
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.faces import Face
from thpad.pipelines.media.track import Landmarker

Box = tuple[int, int, int, int]
Source = str | os.PathLike | bytes | np.ndarray

MIN_IMAGE_SIDE = 32  # px; smaller photos cannot hold a face of any useful size
DEFAULT_MAX_PIXELS = 50_000_000
DOWNSCALE_SIDE = 1000  # px; the retry detection on larger photos runs on a copy this long on its longer side
SAMPLE_RATE_RANGE = (8_000, 192_000)  # Hz, inclusive
SILENCE_LEVEL = 1e-4  # peak |x| below this after resampling counts as silence
WHITE = (255, 255, 255, 255)
ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Pillow's EPS reader runs Ghostscript on the file; a user's photo never needs it.
UNSAFE_IMAGE_FORMATS = frozenset({"EPS"})
PIL_ERRORS = (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError, ValueError,
              EOFError, IndexError, KeyError, TypeError)
AV_ERRORS = (av.error.FFmpegError, OSError, IndexError, ValueError, EOFError)
SAMPLE_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "s64": 2.0**63, "flt": 1.0, "dbl": 1.0}

IMAGE_FIX = "use a JPEG, PNG, WebP or BMP photo"
AUDIO_FIX = "use a wav, mp3, m4a, flac, ogg or opus speech recording, or a video with sound"


class InputError(ValueError):
    """A photo or speech clip ``thpad generate`` cannot use; the message names the file and the fix."""


@dataclass(frozen=True)
class Portrait:
    """A photo, its chosen face and that face aligned onto the PC-AVS template.

    Attributes:
        image: (H, W, 3) uint8 RGB photo, EXIF orientation applied.
        box: the chosen face (left, top, right, bottom) in photo pixels.
        landmarks: (68, 2) float32 in photo pixels.
        xform: (2, 3) float64, photo pixels -> aligned crop pixels (crop side ``AlignConfig.size``).
        aligned: (S, S, 3) uint8 RGB, S = ``AlignConfig.size``.
        other_boxes: the faces not chosen, largest first.
    """

    image: np.ndarray
    box: Box
    landmarks: np.ndarray
    xform: np.ndarray
    aligned: np.ndarray
    other_boxes: tuple[Box, ...]


# ---------------------------------------------------------------------------------------------------- photos


def load_image(source: Source, name: str | None = None, max_pixels: float = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Any photo -> (H, W, 3) uint8 RGB.

    Args:
        source: a path or the bytes of any file Pillow opens (JPEG, PNG, WebP, BMP...; grey, grey+alpha,
            RGBA/LA/P with transparency (composited on white), CMYK and 16-bit are converted; the EXIF
            orientation is applied), or an array (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA, uint8 or
            float in [0, 1].
        name: what messages call the photo; default the path, "photo bytes" or "photo array".
        max_pixels: refuse larger photos (decompression bombs).
    Returns:
        (H, W, 3) uint8 RGB.
    Raises:
        InputError: missing, empty, unreadable, corrupt or truncated file, too many pixels, or a side
            below 32 px.
    """
    if isinstance(source, np.ndarray):
        name = name or "photo array"
        rgb = _array_to_rgb(source, name, max_pixels)
    else:
        name, fp = _open_source(source, name, "photo bytes")
        rgb = _read_pil(fp, name, max_pixels)
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InputError(f"{name} is {width}x{height} px, smaller than {MIN_IMAGE_SIDE} px a side: "
                         "use a larger photo")
    return rgb


def _open_source(source: str | os.PathLike | bytes, name: str | None, bytes_name: str) -> tuple[str, str | io.BytesIO]:
    """(name, what to open): a checked path string, or the bytes wrapped in a file object."""
    if isinstance(source, bytes | bytearray | memoryview):
        name = name or bytes_name
        if len(source) == 0:
            raise InputError(f"{name} is empty (0 bytes): pass the whole file")
        return name, io.BytesIO(bytes(source))
    path = Path(os.fspath(source))
    name = name or str(path)
    if not path.exists():
        raise InputError(f"{name} does not exist: check the path")
    if not path.is_file():
        raise InputError(f"{name} is not a file: pass the path of a file")
    if path.stat().st_size == 0:
        raise InputError(f"{name} is empty (0 bytes): the file was not written completely; use another copy")
    return name, str(path)


def _read_pil(fp: str | io.BytesIO, name: str, max_pixels: float) -> np.ndarray:
    """Open, check the size before decoding, decode, orient and convert one image file."""
    Image.init()  # loads Pillow's format plugins so that ``Image.OPEN`` lists them all
    formats = [f for f in Image.OPEN if f not in UNSAFE_IMAGE_FORMATS]
    try:
        with Image.open(fp, formats=formats) as im:
            width, height = im.size
            if width * height > max_pixels:
                raise InputError(f"{name} is {width}x{height} px ({width * height / 1e6:.0f} megapixels), more than "
                                 f"the {max_pixels / 1e6:g} megapixels allowed: downscale the photo")
            im.load()  # decodes now, so truncated and corrupt files fail inside this try
            return _pil_to_rgb(_exif_upright(im))
    except InputError:
        raise
    except Image.DecompressionBombError as err:
        raise InputError(f"{name} is too large to decode safely ({err}): downscale the photo") from err
    except UnidentifiedImageError as err:
        raise InputError(f"{name} is not an image Pillow can read: {IMAGE_FIX}") from err
    except PIL_ERRORS as err:
        raise InputError(f"{name} is not a readable image, it may be truncated or corrupt ({err}): "
                         f"{IMAGE_FIX}") from err


def _exif_upright(im: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says; unchanged when the EXIF block is unreadable."""
    try:
        return ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return im  # a broken EXIF block should not cost the user a usable photo


def _pil_to_rgb(im: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB: 16/32-bit and float grey scaled, alpha composited on white."""
    if im.mode.startswith("I") or im.mode == "F":
        grey = np.asarray(im, np.float64)  # (H, W)
        if im.mode.startswith("I;16") or (im.mode == "I" and grey.max(initial=0) > 255):
            grey = grey / 257.0  # 16-bit -> 8-bit
        elif im.mode == "F" and grey.max(initial=0) <= 1.0:
            grey = grey * 255.0
        grey = np.clip(np.nan_to_num(grey) + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)  # (H, W, 3)
    if im.mode in ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), np.uint8))  # (H, W, 3)


def _array_to_rgb(arr: np.ndarray, name: str, max_pixels: float) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) uint8 / float [0, 1] -> (H, W, 3) uint8 RGB."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise InputError(f"{name} has shape {arr.shape}: pass (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise InputError(f"{name} has {arr.shape[0] * arr.shape[1] / 1e6:.0f} megapixels, more than the "
                         f"{max_pixels / 1e6:g} allowed: downscale the photo")
    if arr.dtype == np.uint8:
        unit = arr.astype(np.float32) / 255.0
    elif np.issubdtype(arr.dtype, np.floating):
        unit = arr.astype(np.float32)
        if not np.isfinite(unit).all() or unit.min(initial=0) < 0 or unit.max(initial=0) > 1:
            raise InputError(f"{name} is a float array outside [0, 1] or with NaN/inf: scale it to [0, 1]")
    else:
        raise InputError(f"{name} has dtype {arr.dtype}: pass uint8 or float in [0, 1]")
    if unit.ndim == 2:
        unit = np.repeat(unit[:, :, None], 3, axis=2)  # (H, W, 3)
    elif unit.shape[2] == 4:
        alpha = unit[:, :, 3:]  # (H, W, 1)
        unit = unit[:, :, :3] * alpha + (1.0 - alpha)  # on white
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr).copy()  # exact, no float round trip
    return (unit * 255.0 + 0.5).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- faces


def align_portrait(image: np.ndarray, landmarker: Landmarker, track: TrackConfig, align: AlignConfig,
                   face: int | None = None, name: str = "photo") -> Portrait:
    """Detect faces in a photo, choose one and align it exactly as preprocessing aligns a video frame.

    1. Detect with ``track.detect_upsample``; when nothing is found, retry once with one more upsampling
       step (on a copy at most ``DOWNSCALE_SIDE`` px long for larger photos, see ``detect_faces``).
    2. Choose: ``face`` = N takes the N-th largest (0-based); None takes the largest, unless
       ``track.multi_face_policy`` is "reject" and there are several.
    3. Align: the clip transform of ``align_transforms`` for a one-frame clip, then ``warp_frames``.

    Args:
        image: (H, W, 3) uint8 RGB, e.g. from ``load_image``.
        landmarker: a loaded landmark model (``faces.FaceLandmarker``), reused across calls.
        track: detection upsampling, min_face_size and multi_face_policy.
        align: the template, crop size and border.
        face: index of the face to use, largest first; None for the largest.
        name: what messages call the photo (its path).
    Returns:
        ``Portrait`` with the aligned (S, S, 3) crop.
    Raises:
        InputError: no face, several faces under policy "reject", ``face`` out of range, or the chosen
            face below ``track.min_face_size``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"{name} must be an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}: "
                         "load it with load_image")
    faces = detect_faces(image, landmarker, track.detect_upsample)
    if not faces:
        raise InputError(f"no face found in {name}: use a photo where one face is clearly visible, frontal, "
                         f"well lit and at least {track.min_face_size} px tall")
    index = _choose(faces, face, track, name)
    chosen = faces[index]
    if chosen.size < track.min_face_size:
        raise InputError(f"the face in {name} at {chosen.box} is {chosen.size} px, below the minimum "
                         f"{track.min_face_size} px (min_face_size): use a larger photo or one taken closer")
    landmarks = np.asarray(chosen.landmarks, np.float32)  # (68, 2)
    xform = align_transforms(landmarks[None], align)[0].astype(np.float64)  # (2, 3)
    aligned = warp_frames(image[None], xform[None], align.size, align.border)[0]  # (S, S, 3)
    others = tuple(f.box for i, f in enumerate(faces) if i != index)
    return Portrait(image=image, box=tuple(int(v) for v in chosen.box), landmarks=landmarks, xform=xform,
                    aligned=aligned, other_boxes=others)


def detect_faces(image: np.ndarray, landmarker: Landmarker, upsample: int) -> list[Face]:
    """Faces in an (H, W, 3) uint8 photo, largest first, with one retry when none is found.

    The retry uses ``upsample + 1``; on photos longer than ``DOWNSCALE_SIDE`` px it runs on a copy
    downscaled to that length (upsampling the full photo would cost 4x the time and memory), maps the
    boxes back to photo pixels and predicts the landmarks again in them at full resolution.
    """
    faces = landmarker.detect(image, upsample)
    if faces:
        return faces
    height, width = image.shape[:2]
    if max(height, width) <= DOWNSCALE_SIDE:
        return landmarker.detect(image, upsample + 1)
    scale = DOWNSCALE_SIDE / max(height, width)
    small_w, small_h = max(1, round(width * scale)), max(1, round(height * scale))
    small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)  # (h, w, 3)
    sx, sy = width / small_w, height / small_h
    boxes = [_scale_box(f.box, sx, sy) for f in landmarker.detect(small, upsample + 1)]
    found = [Face(box=b, landmarks=landmarker.landmarks(image, b)) for b in boxes]
    return sorted(found, key=lambda f: -f.size)


def _scale_box(box: Box, sx: float, sy: float) -> Box:
    """A box in downscaled pixels -> photo pixels (pixel centres map as (x + 0.5) * s - 0.5)."""
    left, top, right, bottom = box
    return (int(round((left + 0.5) * sx - 0.5)), int(round((top + 0.5) * sy - 0.5)),
            int(round((right + 0.5) * sx - 0.5)), int(round((bottom + 0.5) * sy - 0.5)))


def _choose(faces: list[Face], face: int | None, track: TrackConfig, name: str) -> int:
    """Index of the face to use among ``faces`` (largest first)."""
    boxes = "; ".join(f"{i}: {f.box}" for i, f in enumerate(faces))
    if face is not None:
        if not 0 <= face < len(faces):
            raise InputError(f"face {face} was asked for but {name} has {len(faces)} face(s), largest first "
                             f"({boxes}): pick an index from 0 to {len(faces) - 1}")
        return face
    if len(faces) > 1 and track.multi_face_policy == "reject":
        raise InputError(f"{len(faces)} faces found in {name} ({boxes}) and multi_face_policy is 'reject': "
                         "crop the photo to one face, or choose one by index (0 is the largest)")
    return 0


# ---------------------------------------------------------------------------------------------------- speech


def load_speech(source: Source, audio: AudioConfig, sample_rate: int | None = None, name: str | None = None,
                min_seconds: float = 0.2, max_seconds: float | None = None) -> np.ndarray:
    """Any speech -> mono float32 at ``audio.sample_rate``, resampled exactly as preprocessing does.

    Args:
        source: a path or the bytes of a wav/mp3/m4a/aac/flac/ogg/opus file or a video with sound
            (mp4/mkv/webm/mov; its first audio track), or an array (N,) or (C, N) float in [-1, 1].
        audio: the target rate.
        sample_rate: the rate in Hz of an array ``source`` (required for arrays; files carry their own).
        name: what messages call the clip; default the path, "speech bytes" or "speech array".
        min_seconds: refuse shorter clips.
        max_seconds: refuse longer clips; None for no limit.
    Returns:
        (N,) float32 mono at ``audio.sample_rate`` (``media.audio.resample_pcm``, soxr HQ).
    Raises:
        InputError: missing/empty/unreadable file, no audio track, no samples, NaN/inf, an input rate
            outside 8-192 kHz, silence, or a duration outside [min_seconds, max_seconds].
    """
    if isinstance(source, np.ndarray):
        name = name or "speech array"
        samples, rate = _array_samples(source, sample_rate, name)
    else:
        name, fp = _open_source(source, name, "speech bytes")
        samples, rate = _decode_audio(fp, name, max_seconds)
    return _checked_pcm(samples, rate, audio, name, min_seconds, max_seconds)


def _array_samples(arr: np.ndarray, sample_rate: int | None, name: str) -> tuple[np.ndarray, int]:
    """A caller's (N,) or (C, N) array -> (C, N) float32 and its rate."""
    if sample_rate is None:
        raise InputError(f"{name} is an array without a sample rate: pass sample_rate (Hz)")
    if arr.ndim not in (1, 2) or (arr.ndim == 2 and arr.shape[0] > 16):
        raise InputError(f"{name} has shape {arr.shape}: pass (N,) mono or (C, N) channels-first samples")
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize in (2, 4):
        scale = SAMPLE_SCALE["s16"] if arr.dtype.itemsize == 2 else SAMPLE_SCALE["s32"]
        samples = arr.astype(np.float32) / scale
    elif np.issubdtype(arr.dtype, np.floating):
        samples = arr.astype(np.float32)
    else:
        raise InputError(f"{name} has dtype {arr.dtype}: pass float samples in [-1, 1] (or int16 / int32)")
    return np.atleast_2d(samples), int(sample_rate)  # (C, N)


def _decode_audio(fp: str | io.BytesIO, name: str, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """The first audio track of a media file as (C, N) float32 in [-1, 1] and its rate (PyAV)."""
    try:
        with av.open(fp) as container:
            if not container.streams.audio:
                what = "a video without sound" if container.streams.video else "not an audio file"
                raise InputError(f"{name} has no audio track ({what}): {AUDIO_FIX}")
            stream = container.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            limit = None if max_seconds is None or rate <= 0 else (max_seconds + 1.0) * rate
            chunks, total = [], 0
            for frame in container.decode(stream):
                chunks.append(_frame_samples(frame, name))  # (C, n)
                total += chunks[-1].shape[1]
                if limit is not None and total > limit:
                    raise InputError(f"{name} is longer than the maximum {max_seconds:g} s: "
                                     "cut the speech into shorter clips")
    except InputError:
        raise
    except AV_ERRORS as err:
        raise InputError(f"{name} is not a readable audio or video file ({err}): {AUDIO_FIX}") from err
    if not chunks:
        raise InputError(f"{name} has an audio track without samples: {AUDIO_FIX}")
    return np.concatenate(chunks, axis=1), rate  # (C, N)


def _frame_samples(frame: av.AudioFrame, name: str) -> np.ndarray:
    """One decoded frame -> (C, n) float32 in [-1, 1], from planar (C, n) or packed (1, n * C) layouts."""
    fmt = frame.format.name.removesuffix("p")
    if fmt not in SAMPLE_SCALE:
        raise InputError(f"{name} uses the unsupported sample format {frame.format.name}: {AUDIO_FIX}")
    channels = len(frame.layout.channels) or 1
    raw = frame.to_ndarray()  # (C, n) planar or (1, n * C) packed
    samples = raw.reshape(-1, channels).T if not frame.format.is_planar else raw  # (C, n)
    samples = samples.astype(np.float32)
    if fmt == "u8":
        return (samples - 128.0) / SAMPLE_SCALE["u8"]
    return samples / SAMPLE_SCALE[fmt] if SAMPLE_SCALE[fmt] != 1.0 else samples


def _checked_pcm(samples: np.ndarray, rate: int, audio: AudioConfig, name: str, min_seconds: float,
                 max_seconds: float | None) -> np.ndarray:
    """Validate (C, N) samples at ``rate`` and resample them to mono at ``audio.sample_rate``."""
    low, high = SAMPLE_RATE_RANGE
    if samples.shape[-1] == 0:
        raise InputError(f"{name} has no audio samples: {AUDIO_FIX}")
    if not low <= rate <= high:
        raise InputError(f"{name} has sample rate {rate} Hz, outside {low}-{high} Hz: resample it, e.g. to 16 kHz")
    if not np.isfinite(samples).all():
        raise InputError(f"{name} contains NaN or infinite samples: re-export the audio")
    if max_seconds is not None and samples.shape[-1] / rate > max_seconds:
        raise InputError(f"{name} is {samples.shape[-1] / rate:.2f} s long, longer than the maximum "
                         f"{max_seconds:g} s: cut the speech into shorter clips")
    try:
        pcm = resample_pcm(samples, rate, audio, SAMPLE_RATE_RANGE)  # (N,) mono, as preprocessing
    except (RejectClip, ValueError) as err:
        raise InputError(f"{name}: {err}: {AUDIO_FIX}") from err
    seconds = len(pcm) / audio.sample_rate
    if seconds < min_seconds:
        raise InputError(f"{name} is {seconds:.2f} s long, shorter than the minimum {min_seconds:g} s: "
                         "use a longer speech clip")
    if float(np.abs(pcm).max()) < SILENCE_LEVEL:
        raise InputError(f"{name} is silent (peak below {SILENCE_LEVEL:g}): use a recording with audible speech")
    return pcm
