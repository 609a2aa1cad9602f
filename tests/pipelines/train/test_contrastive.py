"""Stage 1 (``train_contrastive``) on Ray Train with 2 workers, on the micro corpus: the snapshot and the MLflow
run it leaves, a rerun with a larger budget resuming its training state, and a killed worker recovered from
the last checkpoint. Each run is checked against one uninterrupted run: the same updates give the same weights
(and the same loss curve in the stage's DVC plots, which a resumed run still holds whole)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.pipelines.train.dvc_files import assert_finite, export
from thpad.codec import to_dict
from thpad.models.contrastive_net import build_net
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.config import ScalingParams, ScheduleParams
from thpad.pipelines.train.contrastive.config import (
    ContrastiveConfig,
    ContrastiveDataParams,
    ContrastiveValidationParams,
)
from thpad.pipelines.train.contrastive.loop import net_config, train_contrastive
from thpad.pipelines.train.harness import STATE_FILE, learning_rate, run_key
from thpad.pipelines.train.landmark_motion import LandmarkMotionParams
from thpad.storage.checkpoint import read_snapshot
from thpad.storage.tracking import TAG_PARENT_RUN, TrackingConfig
from thpad.storage.uri import S3Config

BATCH = 4  # 2 per worker
STEPS = 4
WARMUP_STEPS = 2
CHECKPOINT_EVERY = 2 * BATCH


def make_config(shards: str, root: Path, work: str, total_steps: int, max_failures: int = 0) -> ContrastiveConfig:
    """The tiny stage config: 2 workers, batch 4, a checkpoint every 2 updates, after E_v's warm-up of 2
    updates on the mouth's landmark motion."""
    schedule = ScheduleParams(
        batch_size=BATCH, accum_rounds=1, total_samples=total_steps * BATCH, lr=1e-3, warmup_samples=BATCH,
        decay_samples=8 * BATCH, min_lr_ratio=0.1, grad_clip=1.0, ema_decay=0.5, log_every_samples=BATCH,
        checkpoint_every_samples=CHECKPOINT_EVERY, seed=3, max_failures=max_failures, mixed_precision=False)
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "mlruns"),
                              experiment="test-train", pipeline_id="test-pipeline")
    return ContrastiveConfig(
        model="tiny", memory_bank="tiny", init_temperature=0.07,
        landmark_motion=LandmarkMotionParams(points=(48, 68), min_std=0.25, pretrain_samples=WARMUP_STEPS * BATCH,
                                             pretrain_lr=1e-3),
        data=ContrastiveDataParams(samples_per_clip=4, shuffle_buffer=4, loader_workers=0),
        validation=ContrastiveValidationParams(pairs=8, frames_per_clip=8),
        schedule=schedule, scaling=ScalingParams(num_workers=2, use_gpu=False, cpus_per_worker=1),
        shards=shards, work=str(root / work), out=str(root / work / "snapshot.pt"), tracking=tracking,
        s3=S3Config(), ray=RayConfig(address="", num_cpus=2))


def final_state(result) -> dict:
    """Rank 0's training state in the run's last checkpoint."""
    with result.checkpoint.as_directory() as folder:
        return torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name].float(), b[name].float(), atol=1e-6), name


def metric_steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def resumed_from(client: MlflowClient, run_id: str) -> list[int]:
    """The sample counts at which the run's workers started from a checkpoint."""
    return [int(m.value) for m in client.get_metric_history(run_id, "progress/resumed_from_nsamples")]


@pytest.fixture(scope="module")
def straight(shards, tmp_path_factory):
    """One uninterrupted run of STEPS updates: the reference for the others."""
    root = tmp_path_factory.mktemp("straight")
    cfg = make_config(shards, root, "work", STEPS)
    return cfg, train_contrastive(cfg)


def test_two_workers_write_snapshot_and_mlflow_run(straight, tmp_path) -> None:
    cfg, result = straight
    assert result.metrics["step"] == STEPS and result.metrics["cur_nsamples"] == STEPS * BATCH
    config, state = read_snapshot(cfg.out)  # weights_only=True inside
    net = build_net(config)
    net.load_state_dict(state, strict=True)
    assert_same_weights(state, final_state(result)["ema"])

    client = MlflowClient(cfg.tracking.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("test-train").experiment_id],
                              "tags.`thpad.stage` = 'train_contrastive'")
    (run,) = runs
    assert resumed_from(client, run.info.run_id) == []
    assert run.info.status == "FINISHED" and run.data.tags[TAG_PARENT_RUN]
    assert run.data.params["schedule.batch_size"] == str(BATCH) and run.data.params["model"] == "tiny"
    assert metric_steps(client, run.info.run_id, "train/loss") == list(range(1, STEPS + 1))
    assert metric_steps(client, run.info.run_id, "pretrain/lmk") == [WARMUP_STEPS]  # logged at its last update
    for key in ("val_ema/top1", "val_ema/top5", "val_ema/sync_top1", "val_ema/sync_pairwise", "val/top1", "train/lr",
                "train/samples_per_s"):
        assert key in run.data.metrics, key
    assert 0.0 <= run.data.metrics["val_ema/top1"] <= run.data.metrics["val_ema/top5"] <= 1.0
    assert run.data.metrics["val_ema/top1"] <= run.data.metrics["val_ema/sync_top1"]  # fewer candidates
    assert run.data.metrics["val_ema/chance_sync_top1"] == pytest.approx(1 / 8)  # 8 frames of the one val clip
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"retrieval_matrix.png", "config.json", "networks.json", "snapshot"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "snapshot")] == ["snapshot/snapshot.pt"]

    files = export(result, "train_contrastive", tmp_path)  # the DVC metrics and plots
    scores = ("top1", "top5", "sync_top1", "sync_pairwise", "chance_top1", "chance_sync_top1")
    assert_finite(files, {"step", "samples", "train.loss",
                          *(f"{net}.{score}" for net in ("val", "val_ema") for score in scores)})
    assert files.metrics["step"] == STEPS and files.metrics["samples"] == STEPS * BATCH
    assert files.metrics["val_ema"]["top1"] == run.data.metrics["val_ema/top1"]
    assert files.steps("loss") == list(range(1, STEPS + 1)) and list(files.loss[0]) == ["step", "samples", "train/loss"]
    assert files.steps("val") == [CHECKPOINT_EVERY // BATCH, STEPS]  # the checkpoint's validation and the final one
    assert [float(r["train/loss"]) for r in files.loss] == [m.value for m in sorted(
        client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)]


def test_rerun_with_larger_budget_resumes(straight, shards, tmp_path) -> None:
    cfg_ref, reference = straight
    first = train_contrastive(make_config(shards, tmp_path, "work", STEPS // 2))
    assert first.metrics["step"] == STEPS // 2
    longer = make_config(shards, tmp_path, "work", STEPS)  # same key: total_samples may change
    resumed = train_contrastive(longer)
    assert resumed.path == first.path  # the same Ray Train run folder
    assert resumed.metrics["step"] == STEPS
    # The second run starts where the first stopped: step numbers continue, and continuing from the
    # first run's weights (not fresh ones) reproduces the uninterrupted run exactly.
    client = MlflowClient(longer.tracking.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("test-train").experiment_id],
                              "tags.`thpad.stage` = 'train_contrastive'", order_by=["attributes.start_time ASC"])
    assert [metric_steps(client, r.info.run_id, "train/loss") for r in runs] == [[1, 2], [3, 4]]
    assert [resumed_from(client, r.info.run_id) for r in runs] == [[], [CHECKPOINT_EVERY]]
    assert_same_weights(final_state(resumed)["model"], final_state(reference)["model"])
    assert_same_weights(final_state(resumed)["ema"], final_state(reference)["ema"])
    # The resumed run's DVC plots hold the whole curve, the first run's steps included, each step once.
    files = export(resumed, "train_contrastive", tmp_path / "resumed")
    whole = export(reference, "train_contrastive", tmp_path / "straight")
    assert files.steps("loss") == list(range(1, STEPS + 1)) and files.steps("val") == [2, STEPS]
    losses = [float(row["train/loss"]) for row in files.loss]
    assert losses == pytest.approx([float(row["train/loss"]) for row in whole.loss], rel=1e-5)


def test_killed_worker_restarts_from_last_checkpoint(straight, shards, tmp_path) -> None:
    _, reference = straight
    cfg = make_config(shards, tmp_path, "work", STEPS, max_failures=1)
    # Rank 1 kills itself (SIGKILL) after update 3, once: only a run that started without a checkpoint fails, so a
    # restart from scratch would fail again and exceed max_failures.
    result = train_contrastive(cfg, fail_at_step=3)
    assert result.metrics["step"] == STEPS
    client = MlflowClient(cfg.tracking.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("test-train").experiment_id],
                                "tags.`thpad.stage` = 'train_contrastive'")
    assert run.info.status == "FINISHED"
    assert resumed_from(client, run.info.run_id) == [CHECKPOINT_EVERY]  # restarted once, at the step-2 checkpoint
    assert_same_weights(final_state(result)["model"], final_state(reference)["model"])
    assert read_snapshot(cfg.out)[1].keys() == final_state(result)["ema"].keys()
    files = export(result, "train_contrastive", tmp_path)  # steps 3-4 ran twice; the plots hold each once
    assert files.steps("loss") == list(range(1, STEPS + 1)) and files.steps("val") == [2, STEPS]


def test_run_key_keeps_budget_and_places_but_not_training_settings(tmp_path) -> None:
    cfg = make_config("shards", tmp_path, "work", STEPS)
    key = run_key(to_dict(cfg), {"shards": "a"})
    assert run_key(to_dict(make_config("moved", tmp_path, "other", 2 * STEPS, max_failures=1)), {"shards": "a"}) == key
    changed = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, lr=2e-3))
    assert run_key(to_dict(changed), {"shards": "a"}) != key  # a changed config starts fresh
    assert run_key(to_dict(cfg), {"shards": "b"}) != key  # so does changed data
    networks = {"model": net_config(cfg)}  # a preset whose sizes change in code (same config) starts fresh too
    wider = {"model": {**net_config(cfg), "visual": {**net_config(cfg)["visual"], "feature_dim": 64}}}
    assert run_key(to_dict(cfg), {"shards": "a"}, networks) != run_key(to_dict(cfg), {"shards": "a"}, wider)
    assert run_key(to_dict(cfg), {"shards": "a"}, networks) == run_key(to_dict(cfg), {"shards": "a"}, dict(networks))


def test_learning_rate_warms_up_then_decays_to_its_floor(tmp_path) -> None:
    s = make_config("shards", tmp_path, "work", STEPS).schedule  # lr 1e-3, warmup 4, cosine over 32, floor 0.1
    assert [learning_rate(n, s) for n in (0, 4, 20, 36, 100)] == pytest.approx([5e-4, 1e-3, 5.5e-4, 1e-4, 1e-4])


def test_retrieval_scores_count_all_pairs_and_same_clip_pairs() -> None:
    from thpad.pipelines.metrics.retrieval import retrieval_scores

    sim = torch.tensor([[0.9, 0.1, 0.95, 0.0],  # row 0: frame 2 (another clip) beats the true frame 0
                        [0.8, 0.3, 0.0, 0.0],  # row 1: frame 0 (same clip) beats frame 1
                        [0.0, 0.0, 0.5, 0.1],
                        [0.0, 0.0, 0.6, 0.2]])  # row 3: frame 2 (same clip) wins
    scores = retrieval_scores(sim, torch.tensor([0, 0, 1, 1]))
    assert scores["top1"] == 0.25 and scores["sync_top1"] == 0.5
    assert scores["chance_top1"] == 0.25 and scores["chance_sync_top1"] == 0.5 and scores["top5"] == 1.0
    # Same-clip pairs: row 0 beats frame 1 (0.9 > 0.1), row 1 loses to 0, row 2 beats 3, row 3 loses to 2.
    assert scores["sync_pairwise"] == 0.5
    assert retrieval_scores(torch.eye(4), torch.tensor([0, 0, 1, 1]))["sync_pairwise"] == 1.0
    assert retrieval_scores(torch.ones(4, 4), torch.tensor([0, 0, 1, 1]))["sync_pairwise"] == 0.5  # all ties


def test_warm_up_fits_the_backbone_to_landmark_motion_and_leaves_the_rest(tmp_path) -> None:
    from thpad.pipelines.train.contrastive.loop import pretrain_visual
    from thpad.storage.tracking import NullRun

    class Recorder(NullRun):
        def __init__(self) -> None:
            self.logged: list[tuple[int, dict[str, float]]] = []

        def log_metrics(self, metrics, step) -> None:
            self.logged.append((step, dict(metrics)))

    torch.manual_seed(0)
    cfg = make_config("shards", tmp_path, "work", STEPS)
    cfg = dataclasses.replace(cfg, landmark_motion=dataclasses.replace(cfg.landmark_motion, pretrain_samples=60 * 16),
                              schedule=dataclasses.replace(cfg.schedule, batch_size=16))
    net = build_net(net_config(cfg))
    mix = torch.randn(2, cfg.landmark_motion.dim)  # the targets: a fixed mix of the two halves' brightness

    def batch() -> dict[str, torch.Tensor]:
        image = torch.zeros(16, 3, 56, 56)
        levels = torch.rand(16, 2) * 2 - 1  # (16, 2): upper and lower half
        image[:, :, :28], image[:, :, 28:] = levels[:, 0, None, None, None], levels[:, 1, None, None, None]
        return {"image": image, "landmark_motion": levels @ mix}  # (16, D)

    before = {k: v.clone() for k, v in net.state_dict().items()}
    tracker = Recorder()
    pretrain_visual(net, ((0, i, batch()) for i in range(60)), cfg, torch.device("cpu"), 1, tracker)
    steps, losses = [s for s, _ in tracker.logged], [m["pretrain/lmk"] for _, m in tracker.logged]
    assert steps == [10, 20, 30, 40, 50, 60]
    assert losses[-1] < 0.5 * losses[0], losses  # the backbone learned what the targets need
    moved = {k for k, v in net.state_dict().items() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith("visual_encoder.backbone.") for k in moved), sorted(moved)[:5]
