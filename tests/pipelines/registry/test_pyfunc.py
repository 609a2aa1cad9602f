"""The registered model's ``predict`` through MLflow's pyfunc wrapper (schema and params enforcement included): real
portrait, real espeak-ng speech, real mp4s decoded with PyAV; every bad input is an INVALID_PARAMETER_VALUE and a
fault an INTERNAL_ERROR carrying an error id that the log holds with the traceback."""

from __future__ import annotations

import base64
import io
import json
import logging

import av
import numpy as np
import pandas as pd
import pytest
import soundfile
from mlflow.exceptions import MlflowException
from PIL import Image

from tests.pipelines.registry.conftest import request_frame


def decoded_frames(mp4: bytes) -> int:
    with av.open(io.BytesIO(mp4)) as container:
        assert container.streams.audio, "the speech is muxed in"
        return sum(1 for _ in container.decode(video=0))


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV")
    return out.getvalue()


def refused(model, frame: pd.DataFrame, params: dict | None = None) -> str:
    """The message of the INVALID_PARAMETER_VALUE that ``predict`` raises."""
    with pytest.raises(MlflowException) as err:
        model.predict(frame, params=params)
    assert err.value.error_code == "INVALID_PARAMETER_VALUE", err.value.message
    assert "Traceback" not in err.value.message
    return err.value.message


def test_predict_returns_a_playable_mp4_and_the_trajectory(pyfunc_model, portrait_path, speech_path) -> None:
    out = pyfunc_model.predict(request_frame(portrait_path, speech_path), params={"seed": 3})
    assert list(out.columns) == ["video", "trajectory"] and len(out) == 1
    sidecar = json.loads(out.trajectory[0])
    assert decoded_frames(out.video[0]) == sidecar["num_frames"] > 25
    assert sidecar["settings"]["seed"] == 3 and sidecar["settings"]["prior"] == "diffusion"
    assert np.asarray(sidecar["samples"][0]["f_nl"]).shape[0] == sidecar["num_frames"]


def test_base64_strings_give_the_same_video_as_bytes(pyfunc_model, portrait_path, speech_path) -> None:
    raw = request_frame(portrait_path, speech_path)
    text = raw.map(lambda b: base64.b64encode(b).decode())
    a = pyfunc_model.predict(raw, params={"seed": 1})
    b = pyfunc_model.predict(text, params={"seed": 1})
    assert a.video[0] == b.video[0]  # x264 single-threaded: byte-identical for the same frames


def test_samples_give_one_mp4_each(pyfunc_model, portrait_path, speech_path) -> None:
    out = pyfunc_model.predict(request_frame(portrait_path, speech_path), params={"seed": 5, "samples": 2})
    videos = out.video[0]
    assert isinstance(videos, list) and len(videos) == 2 and videos[0] != videos[1]
    assert [s["seed"] for s in json.loads(out.trajectory[0])["samples"]] == [5, 6]
    assert all(decoded_frames(v) > 25 for v in videos)


def test_keyframes_pin_their_frames(pyfunc_model, portrait_path, speech_path) -> None:
    flipped = png_bytes(Image.open(portrait_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    frame = request_frame(portrait_path, speech_path, keyframe_images=[[flipped]], keyframe_frames=[[10]])
    sidecar = json.loads(pyfunc_model.predict(frame, params={"seed": 2}).trajectory[0])
    assert sidecar["settings"]["keyframes"] == [10]
    plain = json.loads(pyfunc_model.predict(request_frame(portrait_path, speech_path), params={"seed": 2})
                       .trajectory[0])
    assert sidecar["samples"][0]["f_nl"][10] != plain["samples"][0]["f_nl"][10]


def test_bad_photos_are_invalid_parameter_values(pyfunc_model, portrait_path, speech_path) -> None:
    speech = speech_path.read_bytes()
    corrupt = portrait_path.read_bytes()[:300]
    assert "photo is not a readable image" in refused(
        pyfunc_model, pd.DataFrame({"image": [corrupt], "audio": [speech]}))
    blank = png_bytes(Image.fromarray(np.tile(np.arange(160, dtype=np.uint8), (160, 1))).convert("RGB"))
    assert "no face found in photo" in refused(pyfunc_model, pd.DataFrame({"image": [blank], "audio": [speech]}))


def test_bad_speech_is_an_invalid_parameter_value(pyfunc_model, portrait_path) -> None:
    photo = portrait_path.read_bytes()
    cases = {b"": "column audio is empty", b"RIFF\x00\x00garbage" * 20: "not a readable audio",
             wav_bytes(np.zeros(16000, np.float32)): "is silent"}
    for audio, message in cases.items():
        assert message in refused(pyfunc_model, pd.DataFrame({"image": [photo], "audio": [audio]}))


def test_wrong_types_and_options_are_invalid_parameter_values(pyfunc_model, portrait_path, speech_path) -> None:
    frame = request_frame(portrait_path, speech_path)
    refused(pyfunc_model, pd.DataFrame({"image": [7], "audio": [speech_path.read_bytes()]}))  # MLflow's schema check
    refused(pyfunc_model, frame, {"seed": "seven"})  # MLflow's params check
    assert "guidance must be in [0, 20]" in refused(pyfunc_model, frame, {"guidance": 50.0})
    assert "do(es) not apply to the AR prior" in refused(pyfunc_model, frame, {"prior": "ar", "seed": 1})
    assert "samples must be in [1, 8]" in refused(pyfunc_model, frame, {"samples": 9})


def test_a_fault_is_an_internal_error_with_an_id_in_the_log(pyfunc_model, portrait_path, speech_path,
                                                              caplog) -> None:
    # No input can make a sound model fail, so the loaded model is broken on purpose (and mended afterwards).
    # The request goes through the scoring server's own handler (what ``mlflow models serve`` runs per request).
    from mlflow.pyfunc.scoring_server import invocations

    payload = json.dumps({"dataframe_split": {"columns": ["image", "audio"], "data": [
        [base64.b64encode(p.read_bytes()).decode() for p in (portrait_path, speech_path)]]}})
    model = pyfunc_model.unwrap_python_model().model
    priors, model.priors = model.priors, {}
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(MlflowException) as err:
            invocations(payload, "application/json", pyfunc_model, pyfunc_model.metadata.get_input_schema())
    finally:
        model.priors = priors
    assert err.value.error_code == "INTERNAL_ERROR" and err.value.get_http_status_code() == 500
    body = json.loads(err.value.serialize_as_json())
    assert set(body) == {"error_code", "message", "sqlstate", "error_class"}  # no stack_trace
    error_id = body["message"].split("internal error ")[1].split()[0]
    assert len(error_id) == 12 and "Traceback" not in body["message"] and "KeyError" not in body["message"]
    (record,) = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is KeyError
