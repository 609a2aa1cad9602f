"""One tiny bundle per test session: tiny-preset networks with seeded random weights (contract tests need shapes,
determinism and exactness, not a trained model), written as snapshots and gathered by the real ``bundle`` stage code.
Also real inputs: a portrait from an installed package and espeak-ng speech."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from thpad.pipelines.generate.random_bundle import random_bundle

WINDOW = 32  # a short prior window, so that a few seconds of speech chain several windows


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, micro_params) -> Path:
    """A bundle of tiny random networks (diffusion prior with T=50), made by the bundle stage's code."""
    return random_bundle(tmp_path_factory.mktemp("bundle"), "tiny", micro_params.preprocess,
                         micro_params.train_prior.validation, window=WINDOW, num_steps=50)


@pytest.fixture(scope="session")
def portrait_path(tmp_path_factory) -> Path:
    """Grace Hopper's portrait, shipped with matplotlib, at 320 px wide (face detection is quicker on a smaller
    photo; the face stays far above the minimum size)."""
    from matplotlib import cbook
    from PIL import Image

    path = tmp_path_factory.mktemp("photo") / "hopper.jpg"
    image = Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    image.resize((320, round(image.height * 320 / image.width))).save(path, quality=95)
    return path


@pytest.fixture(scope="session")
def speech_path(tmp_path_factory) -> Path:
    """About 3 s of espeak-ng speech (22.05 kHz wav)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make setup installs it)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "A talking head follows the words of this sentence."], check=True)
    return path
