"""The written truth matches what is rendered: dlib landmarks on decoded frames follow the truth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thpad.pipelines.corpus.config import MotionConfig
from thpad.pipelines.corpus.portraits import PORTRAITS, draw_variation, make_identity_image
from thpad.pipelines.corpus.render import build_rig, render_frame
from thpad.pipelines.media.faces import FaceLandmarker
from thpad.pipelines.media.video import read_video


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def _inner_mouth_gap(lmk: np.ndarray) -> float:
    return float(lmk[[65, 66, 67], 1].mean() - lmk[[61, 62, 63], 1].mean())


def test_decoded_landmarks_follow_written_truth(micro_corpus, landmarker) -> None:
    """dlib on the decoded frames agrees with the written landmarks, and its inner-mouth gap follows
    the written mouth opening within each clip (median over clips: dlib misreads one dark face)."""
    root, summary = micro_corpus
    errors, correlations = [], []
    for rel in summary["clips"]:
        frames = read_video(root / rel).frames
        truth = json.loads((root / rel).with_suffix(".json").read_text())
        true_lmk = np.array(truth["landmarks"])  # (T, 68, 2)
        gaps, opening = [], []
        for t in range(0, len(frames), 2):
            faces = landmarker.detect(frames[t], upsample=1)
            assert faces, f"{rel}: no face found in frame {t}"
            errors.append(np.linalg.norm(faces[0].landmarks - true_lmk[t], axis=1).mean())
            gaps.append(_inner_mouth_gap(faces[0].landmarks))
            opening.append(truth["motion"]["mouth"][t])
        correlations.append(np.corrcoef(gaps, opening)[0, 1])
    assert np.median(errors) < 3.0, f"dlib and the written landmarks disagree by {np.median(errors):.2f} px"
    assert np.median(correlations) > 0.5, f"dlib's mouth gap does not follow the opening: {correlations}"


def test_pose_and_mouth_move_the_landmarks(landmarker, micro_params) -> None:
    cfg: MotionConfig = micro_params.corpus.motion
    image = make_identity_image(PORTRAITS[0], draw_variation(np.random.default_rng(0), 0), 224, landmarker)
    rig = build_rig(image, landmarker.detect(image)[0].landmarks, cfg)
    rest = dict(mouth=0.0, blink=0.0, brow=0.0, gaze_x=0.0, gaze_y=0.0, yaw=0.0, pitch=0.0, roll=0.0,
                tx=0.0, ty=0.0, scale=1.0)

    def detected(**change: float) -> np.ndarray:
        frame, _ = render_frame(rig, {**rest, **change}, 2.5 * 224)
        return landmarker.detect(frame, upsample=1)[0].landmarks

    base = detected()
    assert _inner_mouth_gap(detected(mouth=1.0)) > _inner_mouth_gap(base) + 2
    eye_line = detected(roll=5.0)[45] - detected(roll=5.0)[36]
    assert np.degrees(np.arctan2(eye_line[1], eye_line[0])) == pytest.approx(5.0, abs=2.0)
    assert detected(tx=6.0)[30, 0] - base[30, 0] == pytest.approx(6.0, abs=1.5)
    eye = detected(blink=1.0)
    assert (eye[41, 1] - eye[37, 1]) < (base[41, 1] - base[37, 1]) - 1.5
