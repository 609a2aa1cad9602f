"""Face tracking on sample-corpus clips, whose true landmarks are known (docs/paper-notes.md §2.2)."""

from __future__ import annotations

import dataclasses
import json

import cv2
import dlib
import numpy as np
import pytest

from thpad.pipelines.media.config import TrackConfig
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.faces import FaceLandmarker, shape_points
from thpad.pipelines.media.track import decode_heatmaps, detection_scale, load_landmarker, track_face
from thpad.pipelines.media.video import read_video

CFG = TrackConfig()


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


@pytest.fixture(scope="module")
def clips(micro_corpus) -> list[tuple[np.ndarray, np.ndarray]]:
    """(frames (T, 224, 224, 3), true landmarks (T, 68, 2)) of every corpus clip."""
    root, summary = micro_corpus
    out = []
    for rel in summary["clips"]:
        truth = json.loads((root / rel).with_suffix(".json").read_text())
        out.append((read_video(root / rel).frames, np.array(truth["landmarks"], np.float32)))
    return out


def _error(landmarks: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(landmarks - truth, axis=-1).mean())


@pytest.mark.parametrize("redetect_every", [0, 25])
def test_tracking_detects_rarely_and_stays_on_the_truth(clips, landmarker, redetect_every) -> None:
    """Few detector runs (one per clip when only degraded tracking re-detects, else one per schedule step), and
    tracked landmarks as close to the truth as per-frame detection (dlib misreads one dark portrait by ~3.5 px
    even when detecting on every frame)."""
    cfg = dataclasses.replace(CFG, redetect_every=redetect_every)
    errors = []
    for frames, truth in clips:
        track = track_face(frames, landmarker, cfg)
        num_frames = len(frames)
        assert track.landmarks.shape == (num_frames, 68, 2) and track.landmarks.dtype == np.float32
        scheduled = (num_frames - 1) // redetect_every + 1 if redetect_every else 1
        assert track.stats.detections == scheduled + track.stats.redetections and track.stats.redetections <= 1
        assert track.stats.frames_tracked >= num_frames - track.stats.detections
        assert track.stats.max_faces == 1 and track.stats.frames_lost == 0
        sampled = range(0, num_frames, 10)
        detected = np.mean([_error(landmarker.detect(frames[t], 1)[0].landmarks, truth[t]) for t in sampled])
        errors.append(_error(track.landmarks, truth))
        assert errors[-1] < detected + 0.5, f"tracking {errors[-1]:.2f} px vs detection {detected:.2f} px"
    assert np.median(errors) < 3.0 and max(errors) < 5.0, errors


def test_a_jump_triggers_a_redetection(clips, landmarker) -> None:
    """The face jumps 60 px between two frames: the tracked landmarks degrade, the detector is run
    again at once and the track lands on the moved face."""
    frames, truth = clips[0]
    moved = frames.copy()
    moved[20:] = np.roll(frames[20:], 60, axis=2)  # (T, H, W, 3) shifted right from frame 20
    moved[20:, :, :60] = 0
    truth = truth.copy()
    truth[20:, :, 0] += 60
    cfg = dataclasses.replace(CFG, redetect_every=1000)
    track = track_face(moved, landmarker, cfg)
    assert track.stats.redetections >= 1 and track.stats.detections == 1 + track.stats.redetections
    assert _error(track.landmarks[20:], truth[20:]) < 3.0


def _two_faces(frame: np.ndarray) -> np.ndarray:
    """The frame with a 0.7x copy of itself pasted on its right: (224, 381, 3)."""
    small = cv2.resize(frame, (157, 157), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((224, 224 + 157, 3), np.uint8)
    canvas[:, :224] = frame
    canvas[33:190, 224:] = small
    return canvas


def test_a_face_that_appears_late_is_found_and_tracked_both_ways(clips, landmarker) -> None:
    frames, truth = clips[1]
    late = frames.copy()
    late[:3] = 128  # no face in the first 3 frames
    track = track_face(late[:12], landmarker, CFG)
    assert track.stats.detections == 4  # three misses, then the face at frame 3
    assert _error(track.landmarks[3:], truth[3:12]) < 3.0


def test_multiple_faces_are_rejected_or_the_largest_kept(clips, landmarker) -> None:
    frames, truth = clips[0]
    both = np.stack([_two_faces(f) for f in frames[:3]])  # (3, 224, 381, 3)
    with pytest.raises(RejectClip, match="2 faces in frame 0"):
        track_face(both, landmarker, dataclasses.replace(CFG, multi_face_policy="reject"))
    track = track_face(both, landmarker, CFG)
    assert track.stats.max_faces == 2
    assert _error(track.landmarks, truth[:3]) < 3.0


def test_no_face_and_small_faces_are_rejected(clips, landmarker) -> None:
    blank = np.full((4, 224, 224, 3), 128, np.uint8)
    with pytest.raises(RejectClip, match="no face found in the first 4 frames"):
        track_face(blank, landmarker, CFG)
    small = np.zeros((1, 224, 224, 3), np.uint8)
    small[0, 56:168, 56:168] = cv2.resize(clips[0][0][0], (112, 112), interpolation=cv2.INTER_AREA)
    with pytest.raises(RejectClip, match="below min_face_size 96 px"):
        track_face(small, landmarker, dataclasses.replace(CFG, min_face_size=96))


class SpyLandmarker:
    """The real landmarker, recording the size of every image HOG is run on."""

    def __init__(self, inner: FaceLandmarker) -> None:
        self.inner, self.hog_sizes = inner, []

    def boxes(self, rgb: np.ndarray, upsample: int = 0) -> list:
        self.hog_sizes.append(max(rgb.shape[:2]) * 2**upsample)
        return self.inner.boxes(rgb, upsample)

    def landmarks(self, rgb: np.ndarray, box) -> np.ndarray:
        return self.inner.landmarks(rgb, box)


def test_a_large_frame_is_detected_on_a_resized_copy_and_tracked_at_full_size(clips, landmarker) -> None:
    """A 1280x720 frame with the face scaled 2.5x: HOG sees at most detect_max_side px (not 2560 px, which
    detect_upsample 1 would give), and the landmarks, predicted at full size, stay on the scaled truth."""
    frames, truth = clips[2]
    scale, (x0, y0) = 2.5, (400, 90)
    side = round(224 * scale)
    wide = np.full((20, 720, 1280, 3), 90, np.uint8)  # (T, 720, 1280, 3)
    for t in range(20):
        wide[t, y0:y0 + side, x0:x0 + side] = cv2.resize(frames[t], (side, side), interpolation=cv2.INTER_CUBIC)
    spy = SpyLandmarker(landmarker)
    track = track_face(wide, spy, CFG)
    assert spy.hog_sizes and max(spy.hog_sizes) <= CFG.detect_max_side
    assert detection_scale(720, 1280, CFG) == CFG.detect_max_side / 1280
    assert detection_scale(224, 224, CFG) == 2.0  # dlib's own upsampling, as on a photo
    expected = truth[:20] * side / 224 + np.array([x0, y0])  # (20, 68, 2) in the wide frame
    assert _error(track.landmarks, expected) / scale < 3.0  # in the 224 px clip's pixels


def test_shape_points_read_dlibs_points_exactly(clips, landmarker) -> None:
    frame = clips[0][0][0]
    box = landmarker.boxes(frame, 1)[0]
    shape = landmarker._predictor(frame, dlib.rectangle(*box))
    attributes = np.array([(p.x, p.y) for p in shape.parts()], np.float32)  # (68, 2)
    assert np.array_equal(shape_points(shape), attributes)
    assert np.array_equal(landmarker.landmarks(frame, box), attributes)


def test_fan_needs_a_local_weights_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs fan_weights"):
        TrackConfig(landmark_backend="fan")
    with pytest.raises(FileNotFoundError, match="never downloads"):
        load_landmarker(TrackConfig(landmark_backend="fan", fan_weights=str(tmp_path / "missing.pth")))


def test_fan_heatmap_decoding() -> None:
    """A heatmap peak at pixel (x, y) of the 64 px map decodes to the centre of that pixel, moved a
    quarter pixel towards the higher neighbour, in the crop's 200 * scale box around ``centre``."""
    heatmaps = np.zeros((68, 64, 64), np.float32)
    peaks = np.random.default_rng(0).integers(1, 63, (68, 2))
    heatmaps[np.arange(68), peaks[:, 1], peaks[:, 0]] = 1.0
    heatmaps[np.arange(68), peaks[:, 1], peaks[:, 0] + 1] = 0.5  # pulls x a quarter pixel right
    centre, scale = np.array([100.0, 120.0]), 0.8
    points = decode_heatmaps(heatmaps, centre, scale)
    expected = (peaks + [0.75, 0.5]) / 64 * 200 * scale - 100 * scale + centre
    np.testing.assert_allclose(points, expected, atol=1e-4)
