"""Request parsing of the registered model: the three shapes media arrive in, keyframes, params and every refusal."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd
import pytest

from thpad.pipelines.registry.requests import RequestError, ServingConfig, media_bytes, parse_params, parse_rows

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))  # the start of a JPEG: never base64 text
CFG = ServingConfig(max_rows=2, max_samples=3)


@pytest.mark.parametrize("value", [
    JPEG,
    base64.b64encode(JPEG).decode(),
    base64.encodebytes(JPEG).decode(),  # MLflow's own encoder: lines of 76 characters
    base64.b64encode(JPEG),  # base64 text as bytes, as MLflow passes array items
    "data:image/jpeg;base64," + base64.b64encode(JPEG).decode(),
    bytearray(JPEG),
])
def test_media_arrive_as_bytes_or_base64(value) -> None:
    assert media_bytes(value, "image", 0) == JPEG


def test_one_element_arrays_of_columnwise_inputs_are_unwrapped() -> None:
    assert media_bytes(np.array([base64.b64encode(JPEG)]), "image", 0) == JPEG
    with pytest.raises(RequestError, match="holds 2 values; send one file per row"):
        media_bytes(np.array([JPEG, JPEG]), "image", 0)


def test_text_that_only_looks_like_base64_stays_raw() -> None:
    assert media_bytes(b"not an image", "image", 0) == b"not an image"


@pytest.mark.parametrize(("value", "message"), [
    (None, "row 0, column audio is empty"),
    (float("nan"), "row 0, column audio is empty"),
    ("", "row 0, column audio is empty"),
    (b"", "row 0, column audio is empty"),
    ("not base64!", "not valid base64"),
    ("héllo", "not base64"),
    (12, "holds a int"),
    ("====", "decodes to 0 bytes|not valid base64"),
])
def test_bad_media_values_name_row_column_and_fix(value, message) -> None:
    with pytest.raises(RequestError, match=message) as err:
        media_bytes(value, "audio", 0)
    assert "speech file's bytes" in str(err.value)


def test_rows_with_and_without_keyframes() -> None:
    frame = pd.DataFrame({"image": [JPEG, JPEG], "audio": [b"RIFF\x00\x01", b"RIFF\x00\x02"],
                          "keyframe_images": [[base64.b64encode(JPEG)], []],
                          "keyframe_frames": [np.array([40]), []]})
    first, second = parse_rows(frame, CFG)
    assert first.keyframes == {40: JPEG} and second.keyframes == {}
    assert second.audio == b"RIFF\x00\x02"


@pytest.mark.parametrize(("frame", "message"), [
    ({"image": [JPEG]}, "no column audio"),
    ({"image": [JPEG] * 3, "audio": [JPEG] * 3}, "3 rows; send 1 to 2"),
    ({"image": [JPEG], "audio": [JPEG], "keyframe_images": [[JPEG]], "keyframe_frames": [[]]},
     "1 keyframe_images but 0 keyframe_frames"),
    ({"image": [JPEG], "audio": [JPEG], "keyframe_images": [[JPEG, JPEG]], "keyframe_frames": [[4, 4]]},
     "pins frame 4 twice"),
    ({"image": [JPEG], "audio": [JPEG], "keyframe_images": [[JPEG]], "keyframe_frames": [[-1]]},
     "frame indices >= 0"),
    ({"image": [JPEG], "audio": [JPEG], "keyframe_images": ["x"], "keyframe_frames": [[1]]}, "expected a list"),
])
def test_bad_tables_are_refused(frame, message) -> None:
    with pytest.raises(RequestError, match=message):
        parse_rows(pd.DataFrame(frame), CFG)


def test_input_must_be_a_table() -> None:
    with pytest.raises(RequestError, match="must be a table"):
        parse_rows([JPEG, JPEG], CFG)


def test_params_keep_none_as_the_bundles_default_and_check_types() -> None:
    assert parse_params({"seed": np.int64(3), "guidance": 2, "samples": 2, "sampler": None}, CFG) == \
        {"seed": 3, "guidance": 2.0, "samples": 2}
    assert parse_params(None, CFG) == {}
    with pytest.raises(RequestError, match=r"samples must be in \[1, 3\]"):
        parse_params({"samples": 4}, CFG)
    with pytest.raises(RequestError, match="seed must be a int"):
        parse_params({"seed": "3"}, CFG)
    with pytest.raises(RequestError, match="seed must be a int"):
        parse_params({"seed": True}, CFG)
    with pytest.raises(RequestError, match="unknown param 'sead'"):
        parse_params({"sead": 1}, CFG)


def test_serving_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="serving bounds"):
        ServingConfig(max_samples=0)
