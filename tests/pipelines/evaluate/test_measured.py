"""The measured space on constructed measures: the validation gate (a deliberately broken factor becomes
``unavailable`` everywhere it is used), per-clip centring, the motion space's columns and the finite runs."""

from __future__ import annotations

import numpy as np
import pytest

from thpad.pipelines.evaluate.clips import TRUTH_FACTORS, EvalClip
from thpad.pipelines.evaluate.frame_space import motion_set, summarise_runs, truth_r
from thpad.pipelines.evaluate.measured import MeasuredClip, MotionSpace, centred, finite_sequences, validate
from thpad.pipelines.metrics.face_measure import Measures

T = 120


def clip(rng: np.random.Generator, offset: float) -> EvalClip:
    """A clip with random truth (and nothing the measured space reads besides it)."""
    truth = {k: rng.normal(size=T).cumsum() * 0.3 + offset for k in TRUTH_FACTORS}
    return EvalClip(f"c{offset}", "test", np.zeros((T, 8, 8, 3), np.uint8), np.zeros(T * 640, np.float32),
                    np.zeros((T, 4), np.float32), np.zeros((T, 2), np.float32), np.zeros((T, 3), np.float32), None,
                    truth)


def measured_like(c: EvalClip, rng: np.random.Generator, broken: tuple[str, ...]) -> MeasuredClip:
    """Measures that follow the truth (with a per-clip offset and a little noise), except the ``broken`` factors,
    which are noise; the expression follows brow and mouth."""
    def follow(name: str) -> np.ndarray:
        if name in broken:
            return rng.normal(size=T)
        return c.truth[name] * 2.0 + 5.0 + rng.normal(scale=0.05, size=T)

    ear = -follow("blink")
    m = Measures(np.zeros((T, 68, 2), np.float32), follow("yaw"), follow("pitch"), follow("roll"), ear,
                 follow("mouth"), np.ones(T, bool))
    expr = np.stack([c.truth["brow"], c.truth["mouth"], rng.normal(size=T)], axis=1)
    return MeasuredClip(m, expr)


@pytest.fixture()
def world() -> tuple[list[EvalClip], list[MeasuredClip], dict]:
    rng = np.random.default_rng(0)
    clips = [clip(rng, offset) for offset in (0.0, 10.0, -4.0)]
    real = [measured_like(c, rng, broken=("blink",)) for c in clips]
    return clips, real, validate(real, clips, 0.6)


def test_the_gate_passes_followed_factors_and_refuses_a_broken_one(world) -> None:
    _, _, status = world
    for name in ("yaw", "pitch", "roll", "mouth", "expression"):
        assert status[name]["available"] and status[name]["r"] > 0.95, (name, status[name])
    assert not status["blink"]["available"]
    assert status["blink"]["reason"].startswith("measurer r") and "< 0.6" in status["blink"]["reason"]


def test_metrics_built_on_a_broken_factor_are_unavailable_with_its_reason(world) -> None:
    clips, real, status = world
    status = {**status, "mouth": {"r": 0.1, "available": False, "reason": "measurer r 0.10 < 0.6 on real frames"}}
    space = MotionSpace(real, status)
    rows = [motion_set(real, real, space, [np.abs(c.truth["mouth"]) for c in clips], clips, status, 3)]
    summary = summarise_runs(rows, status, space)
    for key in ("lip_r", "lip_offset", "mouth_open_r"):
        assert summary[key] == "unavailable: measurer r 0.10 < 0.6 on real frames"
    assert summary["fid_fm"] == pytest.approx(0.0, abs=1e-9)  # the real set against itself
    assert isinstance(summary["head_speed_audio_r"], float)


def test_validation_centres_each_clip_so_offsets_do_not_count(world) -> None:
    clips, real, _ = world
    # Each clip's measured yaw follows its truth, but with an offset of its own that runs against the truth's:
    # pooled as they are the two disagree, centred per clip they agree.
    shifted = []
    for i, (c, m) in enumerate(zip(clips, real, strict=True)):
        yaw = c.truth["yaw"] - 3 * c.truth["yaw"].mean() - 40.0 * i
        shifted.append(MeasuredClip(Measures(m.measures.landmarks, yaw, m.measures.pitch, m.measures.roll,
                                             m.measures.ear, m.measures.mouth, m.measures.detected), m.expression))
    pooled = np.corrcoef(np.concatenate([m.measures.yaw for m in shifted]),
                         np.concatenate([c.truth["yaw"] for c in clips]))[0, 1]
    assert pooled < 0.6
    assert validate(shifted, clips, 0.6)["yaw"]["r"] == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(centred(np.array([1.0, np.nan, 3.0])), [-1.0, np.nan, 1.0])


def test_without_truth_every_factor_is_unavailable_and_says_why(world) -> None:
    clips, real, _ = world
    bare = [EvalClip(c.key, c.split, c.frames, c.audio, c.f_a, c.f_l, c.f_nl, c.identity, None) for c in clips]
    status = validate(real, bare, 0.6)
    assert not any(s["available"] for s in status.values())
    assert all("truth" in s["reason"] for s in status.values())
    assert truth_r([m.measures.yaw for m in real], bare, "yaw").startswith("unavailable")


def test_motion_space_keeps_only_validated_columns_scaled_by_the_real_spread(world) -> None:
    _, real, status = world
    status = {**status, "roll": {"r": 0.2, "available": False, "reason": "x"}}
    space = MotionSpace(real, status)
    assert space.columns == ["yaw", "pitch", "expression_pc0", "expression_pc1", "expression_pc2"]
    pooled = np.concatenate([space.vectors(m) for m in real])
    np.testing.assert_allclose(pooled.std(axis=0), 1.0, rtol=1e-6)


def test_finite_sequences_split_at_frames_without_a_face() -> None:
    x = np.arange(20, dtype=float).reshape(10, 2)
    x[3] = np.nan
    x[9] = np.nan
    runs = finite_sequences([x])
    assert [len(r) for r in runs] == [3, 5]
    assert np.isfinite(np.concatenate(runs)).all()
