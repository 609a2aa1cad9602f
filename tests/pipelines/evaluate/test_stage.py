"""``thpad evaluate`` end to end on the micro corpus's preprocessed shards and the session's tiny random bundle: the
metrics JSON with every documented key, the DVC plots CSVs, the report with its figures and videos, and the MLflow
run with the numbers, the reasons of the unavailable ones and the report. The random bundle renders noise, so the
figures say nothing about quality; the test checks what is written and that nothing is faked."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from thpad.pipelines.evaluate.summary import flatten
from thpad.stages.cli import app

REPO = Path(__file__).resolve().parents[3]
REQUIRED = [  # docs/metrics.md: keys later issues gate on
    "measurer.r.yaw", "measurer.r.pitch", "measurer.r.roll", "measurer.r.blink", "measurer.r.mouth",
    "table1.s0.var", "table1.s0.fid_fm", "table1.s0.fid_dfm", "table1.s0.snd", "table1.s0.ci.snd",
    "table1.s2.5.snd", "table1_rescaled.s2.5.snd", "measured.s2.5.snd",
    "reenactment.pose_r.yaw", "reenactment.pose_r.pitch", "reenactment.pose_r.roll", "reenactment.blink_r",
    "reconstruction.l1", "reconstruction.psnr", "reconstruction.ssim", "reconstruction.lmd",
    "reconstruction.copy_photo.l1", "lip.mouth_open_r", "lip.lip_r", "identity.same_person_share",
    "identity.dlib_distance", "ar.f_nl.snd", "ar.measured.snd", "ddim_vs_ddpm.ddpm.fid_fm",
    "ddim_vs_ddpm.ddim25.seconds_per_video_second", "editing.speed_ratio", "smoothness.f_nl",
    "disentanglement.lip_zero.b_d", "audio_tied.real", "run.total_seconds",
]


@pytest.fixture(scope="module")
def evaluated(shards, tiny_bundle, micro_params, tmp_path_factory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    params = yaml.safe_load((REPO / "profiles" / "micro.yaml").read_text())
    params["runtime"]["tracking"] |= {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                                      "artifact_root": str(root / "mlruns"), "experiment": "test-evaluate"}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = root / "out"
    result = CliRunner().invoke(app, ["evaluate", "--params", str(root / "params.yaml"), "--bundle", str(tiny_bundle),
                                      "--preprocessed", shards, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, json.loads((out / "evaluate.json").read_text()), root


def test_every_documented_key_is_a_number_or_an_unavailable_reason(evaluated) -> None:
    _, metrics, _ = evaluated
    flat = flatten(metrics)
    missing = [k for k in REQUIRED if k not in flat]
    assert not missing, missing
    for key in REQUIRED:
        value = flat[key]
        assert (isinstance(value, int | float) and math.isfinite(value)) or (
            isinstance(value, str) and value.startswith("unavailable: ")), (key, value)
    assert metrics["run"]["splits"] == ["test", "val"]
    assert metrics["table1"]["s2.5"]["seeds"] == 2


def test_a_random_generator_loses_the_face_and_is_scored_so(evaluated) -> None:
    _, metrics, _ = evaluated
    assert metrics["identity"]["face_found_share"] == 0.0  # noise has no face: every probed frame a failure
    assert metrics["identity"]["same_person_share"] == 0.0
    by_split = metrics["identity"]["by_split"]
    assert set(by_split) == {"test", "val"} and all(v["same_person_share"] == 0.0 for v in by_split.values())
    assert sum(v["frames"] for v in by_split.values()) == metrics["identity"]["frames"]
    assert metrics["reconstruction"]["l1"] > metrics["reconstruction"]["copy_photo"]["l1"]


def test_plots_report_and_videos_are_written(evaluated) -> None:
    out, _, _ = evaluated
    with (out / "plots" / "table1.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["s"]) for r in rows] == [0.0, 2.5]
    assert {"f_nl_plain_guidance_snd", "measured_snd"} <= set(rows[0])
    report = (out / "report.html").read_text()
    for text in ("Table I", "Diffusion against AR", "clip0.mp4", "table1_f_nl.png", "unavailable"):
        assert text in report, text
    assert (out / "clip0.mp4").stat().st_size > 0 and (out / "timeline.png").is_file()


def test_the_mlflow_run_holds_the_numbers_reasons_and_report(evaluated) -> None:
    _, metrics, root = evaluated
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test-evaluate")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if r.info.run_name == "evaluate"]
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["table1.s0.snd"] == pytest.approx(metrics["table1"]["s0"]["snd"])
    assert any(k.startswith("thpad.unavailable.") for k in run.data.tags)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/report.html" in artifacts
