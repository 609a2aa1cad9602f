"""``thpad generate`` on the tiny bundle: a real photo and espeak-ng speech give an mp4; every bad input gives exit
code 2, a message naming the file, and nothing at OUT."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from thpad.stages.cli import app

runner = CliRunner()


def _run(args: list[str]):
    return runner.invoke(app, ["generate", *args])


def test_generate_writes_a_video_its_sidecar_and_a_grid(tiny_bundle, portrait_path, speech_path, tmp_path) -> None:
    out = tmp_path / "talk.mp4"
    result = _run([str(portrait_path), str(speech_path), "-o", str(out), "--model", str(tiny_bundle),
                   "--samples", "2", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert out.is_file() and (tmp_path / "talk-seed7.mp4").is_file() and (tmp_path / "talk-seed8.mp4").is_file()
    assert (tmp_path / "talk.json").is_file() and "wrote" in result.output
    with av.open(str(out)) as grid:
        assert grid.streams.video[0].codec_context.width == 2 * 56 and grid.streams.audio


def _speech(tmp_path: Path, seconds: float, silent: bool = False) -> Path:
    import soundfile

    path = tmp_path / ("silent.wav" if silent else "noise.wav")
    rng = np.random.default_rng(0)
    data = np.zeros(int(16000 * seconds)) if silent else 0.3 * rng.standard_normal(int(16000 * seconds))
    soundfile.write(path, data, 16000)
    return path


def _no_face(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "wall.png"
    Image.fromarray(np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (200, 1))).convert("RGB").save(path)
    return path


@pytest.mark.parametrize("case", ["no_face", "silent", "short", "not_audio", "missing_photo", "corrupt_photo",
                                  "bad_keyframe", "ar_with_seed", "not_a_bundle"])
def test_bad_input_exits_2_naming_it_and_leaves_nothing(case, tiny_bundle, portrait_path, speech_path,
                                                       tmp_path) -> None:
    photo, speech, extra, expected = str(portrait_path), str(speech_path), [], ""
    model = str(tiny_bundle)
    if case == "no_face":
        photo, expected = str(_no_face(tmp_path)), "no face"
    elif case == "silent":
        speech, expected = str(_speech(tmp_path, 2.0, silent=True)), "silent"
    elif case == "short":
        speech, expected = str(_speech(tmp_path, 0.1)), "shorter"
    elif case == "not_audio":
        speech = str(tmp_path / "notes.wav")
        Path(speech).write_text("these are notes, not sound")
        expected = "notes.wav"
    elif case == "missing_photo":
        photo, expected = str(tmp_path / "nobody.jpg"), "nobody.jpg"
    elif case == "corrupt_photo":
        photo = str(tmp_path / "half.jpg")
        Path(photo).write_bytes(portrait_path.read_bytes()[:2000])
        expected = "half.jpg"
    elif case == "bad_keyframe":
        extra, expected = ["--keyframe", "forty=x.jpg"], "FRAME=PHOTO"
    elif case == "ar_with_seed":
        extra, expected = ["--prior", "ar", "--seed", "3"], "AR prior"
    elif case == "not_a_bundle":
        model, expected = str(tmp_path), "not a thpad bundle"
    out = tmp_path / "out" / "talk.mp4"
    result = _run([photo, speech, "-o", str(out), "--model", model, *extra])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert not out.exists() and not any(out.parent.glob("*")) if out.parent.exists() else True


def test_help_shows_an_example() -> None:
    thpad = str(Path(sys.executable).parent / "thpad")
    result = subprocess.run([thpad, "generate", "--help"], capture_output=True, text=True, check=True)
    assert "Example: thpad generate face.jpg speech.wav -o talk.mp4" in result.stdout
