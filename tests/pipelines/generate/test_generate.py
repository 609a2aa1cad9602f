"""Generation end to end on the tiny bundle: real portrait, real espeak-ng speech, real mp4 decoded with PyAV."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

import thpad
from thpad.pipelines.generate.settings import SettingsError
from thpad.storage.bundle import BundleError


@pytest.fixture(scope="module")
def model(tiny_bundle):
    return thpad.load(str(tiny_bundle))


def test_same_seed_same_trajectory_other_seed_another(model, portrait_path, speech_path) -> None:
    a = model.generate(portrait_path, speech_path, seed=3)
    b = model.generate(portrait_path, speech_path, seed=3)
    c = model.generate(portrait_path, speech_path, seed=4)
    seconds = len(a.audio) / a.sample_rate
    assert a.trajectory.shape == (round(seconds * 25), model.head.cfg.nl_dim)
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    assert np.abs(a.trajectory[1:] - c.trajectory[1:]).mean() > 1e-3
    assert a.settings["seed"] == 3 and a.settings["sampler"] == model.sampling["sampler"]


def test_frame_zero_is_the_photos_own_code_unless_no_anchor(model, portrait_path, speech_path) -> None:
    code = model.nonlip_code(model.portrait(portrait_path))
    anchored = model.generate(portrait_path, speech_path, seed=0)
    np.testing.assert_array_equal(anchored.trajectory[0], code)
    free = model.generate(portrait_path, speech_path, seed=0, anchor=False)
    assert np.abs(free.trajectory[0] - code).max() > 1e-4


def test_keyframe_pins_its_photos_code_exactly(model, portrait_path, speech_path, tmp_path) -> None:
    from PIL import Image

    flipped = tmp_path / "flipped.png"
    Image.open(portrait_path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(flipped)
    result = model.generate(portrait_path, speech_path, seed=1, keyframes={40: flipped})
    np.testing.assert_array_equal(result.trajectory[40], model.nonlip_code(model.portrait(flipped)))


def test_samples_differ_and_chained_windows_cover_the_audio(model, portrait_path, speech_path) -> None:
    result = model.generate(portrait_path, speech_path, samples=3, seed=5)
    seeds = [s.seed for s in result.samples]
    assert seeds == [5, 6, 7]
    trajectories = [s.f_nl for s in result.samples]
    assert result.num_frames > 2 * 32  # several 32-frame prior windows in the tiny bundle
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(trajectories[i][1:] - trajectories[j][1:]).mean() > 1e-3


def test_ar_prior_is_deterministic_and_refuses_what_does_not_apply(model, portrait_path, speech_path) -> None:
    a = model.generate(portrait_path, speech_path, prior="ar")
    b = model.generate(portrait_path, speech_path, prior="ar")
    np.testing.assert_array_equal(a.trajectory, b.trajectory)
    for option in ({"seed": 1}, {"guidance": 2.0}, {"samples": 2}, {"keyframes": {3: portrait_path}}):
        with pytest.raises(SettingsError, match="AR prior"):
            model.generate(portrait_path, speech_path, prior="ar", **option)
    with pytest.raises(SettingsError, match="DDPM always runs all 50 steps"):
        model.generate(portrait_path, speech_path, sampler="ddpm", steps=10)
    with pytest.raises(SettingsError, match="unknown option"):
        model.generate(portrait_path, speech_path, sead=1)


def test_disentanglement_views_and_motion_scale(model, portrait_path, speech_path) -> None:
    zero = model.generate(portrait_path, speech_path, nonlip="zero")
    assert not zero.trajectory.any()
    still = model.generate(portrait_path, speech_path, seed=2, motion_scale=0.0)
    np.testing.assert_allclose(still.trajectory, np.repeat(still.trajectory[:1], still.num_frames, axis=0), atol=1e-6)


def test_save_streams_an_mp4_with_the_speech_and_a_sidecar(model, portrait_path, speech_path, tmp_path) -> None:
    result = model.generate(portrait_path, speech_path, seed=0)
    out = result.save(tmp_path / "talk.mp4")
    with av.open(str(out["video"])) as container:
        video = container.streams.video[0]
        assert container.streams.audio, "no audio stream"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video)]
        samples = sum(f.samples for f in av.open(str(out["video"])).decode(audio=0))
    assert abs(len(frames) - result.num_frames) <= 1 and frames[0].shape == (56, 56, 3)
    assert abs(samples - len(result.audio)) <= 1024 + 1024
    rendered = result.frames()
    assert rendered.shape == (result.num_frames, 56, 56, 3)
    assert np.abs(frames[10].astype(float) - rendered[10]).mean() < 12  # the mp4 holds the rendered frames
    sidecar = json.loads(out["sidecar"].read_text())
    assert sidecar["samples"][0]["seed"] == 0 and len(sidecar["samples"][0]["f_nl"]) == result.num_frames
    assert sidecar["inputs"]["image_sha256"] and sidecar["bundle"]["id"] == model.bundle.id


def test_save_of_several_samples_writes_the_grid_unless_told_not_to(model, portrait_path, speech_path,
                                                                    tmp_path) -> None:
    result = model.generate(portrait_path, speech_path, samples=2, seed=4)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    with_grid = result.save(tmp_path / "a" / "talk.mp4")
    assert set(with_grid) == {"video", "seed4", "seed5", "sidecar"} and with_grid["video"].is_file()
    without = result.save(tmp_path / "b" / "talk.mp4", with_grid=False)
    assert set(without) == {"seed4", "seed5", "sidecar"}
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["talk-seed4.mp4", "talk-seed5.mp4", "talk.json"]
    for path in without.values():
        assert path.stat().st_size > 0


def test_paste_back_keeps_the_photo_size_and_far_pixels(model, portrait_path, speech_path) -> None:
    result = model.generate(portrait_path, speech_path, seed=0)
    chunk = next(result.chunks(paste_back=True))
    photo = result.portrait.image
    height, width = photo.shape[0] // 2 * 2, photo.shape[1] // 2 * 2
    assert chunk.shape[1:] == (height, width, 3)
    left, top, right, bottom = result.portrait.box
    far = chunk[:, : max(1, top - (bottom - top)), :]  # well above the face
    np.testing.assert_array_equal(far, np.repeat(photo[None, : far.shape[1], :width], len(chunk), axis=0))


def test_a_tampered_bundle_is_refused_naming_the_file(tiny_bundle, tmp_path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    data = bytearray((copy / "prior.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "prior.pt").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"prior\.pt does not match the sha256"):
        thpad.load(str(copy))
    (copy / "bundle.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(BundleError, match="schema version 99"):
        thpad.load(str(copy))


def _driving_video(photo: Path, path: Path, frames: int = 40) -> Path:
    """A real portrait moving a little (translation and zoom), written as H.264 at 25 fps."""
    import cv2
    from PIL import Image

    from thpad.pipelines.media.video import write_video

    image = np.asarray(Image.open(photo).convert("RGB"))
    height, width = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    out = []
    for t in range(frames):
        m = cv2.getRotationMatrix2D((width / 2, height / 2), 3.0 * np.sin(t / 6), 1.0 + 0.02 * np.sin(t / 9))
        m[0, 2] += 4 * np.sin(t / 5)
        out.append(cv2.warpAffine(image[:height, :width], m, (width, height), borderMode=cv2.BORDER_REPLICATE))
    return write_video(path, out, 25, None)


def test_reenactment_takes_e_v_of_the_driving_frames_aligned_as_in_preprocessing(
        model, micro_params, portrait_path, speech_path, tmp_path) -> None:
    import dataclasses

    import torch

    from thpad.models.generation import encode_nonlip
    from thpad.pipelines.generate.tensors import to_model_input
    from thpad.pipelines.media import align, resample
    from thpad.pipelines.media.track import track_face
    from thpad.pipelines.preprocess.clip import _decode

    video = _driving_video(portrait_path, tmp_path / "driving.mp4")
    result = model.generate(portrait_path, speech_path, nonlip_from=str(video))
    # Preprocessing's own steps on the same file: 25 fps frames, tracked, aligned, warped; then E_v.
    cfg = dataclasses.replace(micro_params.preprocess, track=model.track_cfg, align=model.align_cfg)
    decoded = _decode(video)
    frames = decoded.frames[resample.frame_indices(len(decoded.frames), decoded.fps, 25)]
    xforms = align.align_transforms(track_face(frames, model.landmarker, cfg.track).landmarks, cfg.align)
    crops = align.warp_frames(frames, xforms, cfg.align.size, cfg.align.border)
    expected = encode_nonlip(model.head, torch.stack([to_model_input(c, model.image_size) for c in crops]))
    np.testing.assert_array_equal(result.trajectory[:40], expected)
    np.testing.assert_array_equal(result.trajectory[40:], np.repeat(expected[-1:], result.num_frames - 40, axis=0))
    with pytest.raises(SettingsError, match="reenactment"):
        model.generate(portrait_path, speech_path, nonlip_from=str(video), seed=2)


def test_twenty_seconds_chain_windows_and_join_them_continuously(model, portrait_path, speech_path) -> None:
    import soundfile

    speech, rate = soundfile.read(speech_path, dtype="float32")
    long = np.tile(speech, int(np.ceil(20 * rate / len(speech))))[: 20 * rate]  # 20 s of real speech
    result = model.generate(portrait_path, long, sample_rate=rate, seed=0)
    assert result.num_frames == 500  # 20 s at 25 fps: 16 chained windows of the tiny bundle's 32 frames
    steps = np.linalg.norm(np.diff(result.trajectory, axis=0), axis=1)  # (499,) frame-to-frame change
    joins = np.arange(31, 499, 31)  # window k + 1 starts on window k's last frame: the steps right after a join
    assert steps[joins].mean() < 2.0 * np.median(steps), (steps[joins].mean(), np.median(steps))
    chunks = list(result.chunks())
    assert [len(c) for c in chunks] == [128, 128, 128, 116]  # rendered window by window


def test_a_failed_save_leaves_an_older_video_alone_and_no_partial_file(model, portrait_path, speech_path, tmp_path,
                                                                        monkeypatch) -> None:
    import soundfile

    out = tmp_path / "talk.mp4"
    out.write_bytes(b"an older video")
    speech, rate = soundfile.read(speech_path, dtype="float32")
    result = model.generate(portrait_path, np.tile(speech, 3), sample_rate=rate, seed=0)  # > 128 frames: 2 windows
    original, calls = type(result)._render, []

    def failing(*args, **kwargs):  # a mock: a failure mid-video (disk full, a killed worker) cannot be made here
        calls.append(1)
        if len(calls) > 1:
            raise OSError("no space left on device")
        return original(*args, **kwargs)

    monkeypatch.setattr(type(result), "_render", failing)
    with pytest.raises(OSError, match="no space"):
        result.save(out)
    assert len(calls) == 2 and out.read_bytes() == b"an older video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]
