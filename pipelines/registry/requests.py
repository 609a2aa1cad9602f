"""What the registered model accepts: one generation job per DataFrame row, checked before anything is generated.

A row holds a portrait (``image``) and speech (``audio``) as bytes, plus optional keyframes: ``keyframe_images``
(photos) and ``keyframe_frames`` (the frame each photo pins, as ``thpad generate --keyframe FRAME=PHOTO`` does).
Media arrive in several shapes, all accepted: raw bytes (a DataFrame built in Python, or MLflow's
``dataframe_split`` payload, which MLflow decodes), base64 strings (MLflow's ``inputs`` / ``instances`` payloads as
rows are not decoded), base64 text as bytes (what MLflow makes of base64 items inside an array column) and
one-element arrays of base64 text (``inputs`` given column-wise). Raw media are never pure base64 text (every image
and audio container starts with bytes outside the base64 alphabet), so base64 text is told apart safely.

The params are the per-call options of ``thpad generate`` that a server exposes (``PARAM_TYPES``); ``None`` leaves
the bundle's default. Every problem raises ``RequestError`` naming the row, the column and the fix.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

IMAGE, AUDIO = "image", "audio"
KEYFRAME_IMAGES, KEYFRAME_FRAMES = "keyframe_images", "keyframe_frames"
VIDEO, TRAJECTORY = "video", "trajectory"
PARAM_TYPES: dict[str, type] = {"seed": int, "guidance": float, "samples": int, "prior": str, "sampler": str,
                                "steps": int}
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/\s]+={0,2}\s*$")
_DATA_URL = re.compile(r"^data:[^,]*;base64,", re.IGNORECASE)
MEDIA_FIX = {IMAGE: "send the photo file's bytes (JPEG, PNG, WebP or BMP), base64-encoded in JSON",
             AUDIO: "send the speech file's bytes (wav, mp3, m4a, flac, ogg), base64-encoded in JSON",
             KEYFRAME_IMAGES: "send each keyframe photo file's bytes, base64-encoded in JSON"}


class RequestError(ValueError):
    """A request the model cannot run: a missing column, a wrong type, undecodable base64 or an option out of
    bounds. The message names the row and column and says how to fix it."""


@dataclass(frozen=True)
class ServingConfig:
    """Bounds on one request, stored in the logged model's ``model_config``.

    Attributes:
        max_rows: rows (videos to generate) per request.
        max_samples: the ``samples`` param's maximum (each sample is a whole video).
        max_seconds: the longest speech accepted, in seconds.
        crf: x264 quality of the returned videos (lower is better; 18 is visually lossless).
    """

    max_rows: int = 8
    max_samples: int = 8
    max_seconds: float = 600.0
    crf: int = 18

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_samples < 1 or self.max_seconds <= 0 or not 0 <= self.crf <= 51:
            raise ValueError(f"serving bounds need max_rows, max_samples >= 1, max_seconds > 0 and crf in [0, 51], "
                             f"got {self}")


@dataclass(frozen=True)
class Job:
    """One row's inputs as bytes, ready for ``TalkingHeadModel.generate``."""

    image: bytes
    audio: bytes
    keyframes: dict[int, bytes] = field(default_factory=dict)


def parse_rows(frame: Any, cfg: ServingConfig) -> list[Job]:
    """Every row of a request as a ``Job``.

    Args:
        frame: the request's DataFrame (columns ``image``, ``audio`` and optionally the keyframe columns).
        cfg: the bounds (``max_rows``).
    Returns:
        One ``Job`` per row, in order.
    Raises:
        RequestError: not a DataFrame, no rows or too many, a missing column, or a bad value (named).
    """
    if not isinstance(frame, pd.DataFrame):
        raise RequestError(f"the input must be a table (a pandas DataFrame, or dataframe_split JSON) with columns "
                           f"{IMAGE} and {AUDIO}, got {type(frame).__name__}")
    missing = [c for c in (IMAGE, AUDIO) if c not in frame.columns]
    if missing:
        raise RequestError(f"the input has no column {' or '.join(missing)} (columns: {list(frame.columns)}): "
                           f"send {IMAGE} (the portrait) and {AUDIO} (the speech) in every row")
    if not 1 <= len(frame) <= cfg.max_rows:
        raise RequestError(f"the input has {len(frame)} rows; send 1 to {cfg.max_rows} rows per request")
    return [_job(row, i) for i, row in enumerate(frame.to_dict("records"))]


def _job(row: Mapping[str, Any], index: int) -> Job:
    image = media_bytes(row[IMAGE], IMAGE, index)
    audio = media_bytes(row[AUDIO], AUDIO, index)
    return Job(image, audio, _keyframes(row.get(KEYFRAME_IMAGES), row.get(KEYFRAME_FRAMES), index))


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def media_bytes(value: Any, column: str, row: int) -> bytes:
    """The file bytes of one media cell: raw bytes, base64 text as bytes, or a base64 string (a ``data:`` URL
    prefix is allowed).

    Raises:
        RequestError: an empty cell, a value of another type, or a string that is not base64.
    """
    where = f"row {row}, column {column}"
    if isinstance(value, np.ndarray):  # MLflow's columnar ``inputs`` payload: {"image": [b64], "audio": [b64]}
        if value.size != 1:
            raise RequestError(f"{where} holds {value.size} values; send one file per row (a dataframe_split "
                               "payload, or \"inputs\" as a list of rows)")
        value = value.reshape(-1)[0]
    if _is_missing(value) or (isinstance(value, str | bytes | bytearray) and not value):
        raise RequestError(f"{where} is empty: {MEDIA_FIX[column]}")
    if isinstance(value, bytes | bytearray | memoryview | np.bytes_):
        raw = bytes(value)
        if _BASE64_TEXT.match(raw):
            try:
                return _decode_base64(raw, where, column)
            except RequestError:
                return raw  # text that only looks like base64: the media loader names what is wrong with it
        return raw
    if isinstance(value, str):
        try:
            text = _DATA_URL.sub("", value.strip()).encode("ascii")
        except UnicodeEncodeError as err:
            raise RequestError(f"{where} is a string that is not base64 ({err.reason}): {MEDIA_FIX[column]}") from None
        return _decode_base64(text, where, column)
    raise RequestError(f"{where} holds a {type(value).__name__}; expected the file's bytes or a base64 string: "
                       f"{MEDIA_FIX[column]}")


def _decode_base64(text: bytes, where: str, column: str) -> bytes:
    compact = b"".join(text.split())  # MLflow's own encoder breaks base64 into lines
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as err:
        raise RequestError(f"{where} is a string that is not valid base64 ({err}): {MEDIA_FIX[column]}") from None
    if not data:
        raise RequestError(f"{where} decodes to 0 bytes: {MEDIA_FIX[column]}")
    return data


def _keyframes(images: Any, frames: Any, row: int) -> dict[int, bytes]:
    """{frame: photo bytes} of one row; absent, empty or null keyframe cells mean none."""
    images, frames = _sequence(images, KEYFRAME_IMAGES, row), _sequence(frames, KEYFRAME_FRAMES, row)
    if len(images) != len(frames):
        raise RequestError(f"row {row} has {len(images)} {KEYFRAME_IMAGES} but {len(frames)} {KEYFRAME_FRAMES}: "
                           "send one frame index per keyframe photo")
    out: dict[int, bytes] = {}
    for frame, image in zip(frames, images, strict=True):
        index = _frame_index(frame, row)
        if index in out:
            raise RequestError(f"row {row} pins frame {index} twice: send each frame index once")
        out[index] = media_bytes(image, KEYFRAME_IMAGES, row)
    return out


def _sequence(value: Any, column: str, row: int) -> Sequence[Any]:
    if _is_missing(value):
        return []
    if isinstance(value, np.ndarray):
        return list(value.ravel())
    if isinstance(value, list | tuple):
        return list(value)
    raise RequestError(f"row {row}, column {column} holds a {type(value).__name__}; expected a list "
                       f"(e.g. {KEYFRAME_FRAMES}: [40, 80] with {KEYFRAME_IMAGES}: [photo, photo])")


def _frame_index(value: Any, row: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise RequestError(f"row {row}, column {KEYFRAME_FRAMES} holds {value!r}; expected frame indices >= 0 "
                           "(25 frames per second of speech)")
    return int(value)


def parse_params(params: Mapping[str, Any] | None, cfg: ServingConfig) -> dict[str, Any]:
    """The generation options a request sets (``None`` values keep the bundle's defaults).

    Raises:
        RequestError: an unknown name, a wrong type, or ``samples`` outside [1, ``cfg.max_samples``].
    """
    out: dict[str, Any] = {}
    for name, value in (params or {}).items():
        if name not in PARAM_TYPES:
            raise RequestError(f"unknown param {name!r}: the params are {', '.join(PARAM_TYPES)}")
        if value is not None:
            out[name] = _typed(name, value)
    samples = out.get("samples", 1)
    if not 1 <= samples <= cfg.max_samples:
        raise RequestError(f"samples must be in [1, {cfg.max_samples}] per request, got {samples}")
    return out


def _typed(name: str, value: Any) -> Any:
    kind = PARAM_TYPES[name]
    if isinstance(value, np.generic):
        value = value.item()
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise RequestError(f"param {name} must be a {kind.__name__}, got {value!r}")
