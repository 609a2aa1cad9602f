"""Stages 4 and 5 (``train_prior``, ``train_prior_ar``) on Ray Train with 2 workers, on a small synthetic
features folder (clips of 50 and 20 frames, so windows are cropped and padded): the snapshots rebuild
strictly and sample, the normalisation covers every rank's clips, and the MLflow runs hold params, the
validation metrics, the trajectory figure and the snapshot; the stages' DVC metrics and plots. Config checks and run
keys without Ray."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.pipelines.train.dvc_files import assert_finite, export
from thpad.codec import ConfigError, from_dict, to_dict
from thpad.models.autoregressive import AutoregressiveConfig, ar_sample
from thpad.models.diffusion.process import DiffusionConfig
from thpad.models.diffusion.sampling import SamplerConfig, sample
from thpad.models.motion_prior import build_prior, generate_nl, prior_normalisation, prior_schedule
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.config import ScalingParams, ScheduleParams
from thpad.pipelines.train.harness import STATE_FILE, run_key
from thpad.pipelines.train.prior.autoregressive import train_prior_ar
from thpad.pipelines.train.prior.config import (
    PriorARConfig,
    PriorConfig,
    PriorDataParams,
    PriorValidationParams,
    ValidationParams,
)
from thpad.pipelines.train.prior.diffusion import guidance_free_names, train_prior
from thpad.storage.checkpoint import read_snapshot
from thpad.storage.features import ClipFeatures, read_split, write_feature_file, write_info
from thpad.storage.tracking import TrackingConfig
from thpad.storage.uri import S3Config, Storage

N, A = 42, 16  # A differs from the tiny preset's 32: the prior takes the widths of the data
BATCH, STEPS, WINDOW = 4, 3, 32


def synthetic_clip(key: str, split: str, frames: int, rng: np.random.Generator) -> ClipFeatures:
    """f_nl: a smooth path that moves while "speaking" (a channel of f_a), plus noise."""
    speaking = (np.arange(frames) // 10 + rng.integers(2)) % 2
    audio = rng.normal(size=(frames, A)).astype(np.float32)
    audio[:, 0] += 2.0 * speaking
    path = np.cumsum(rng.normal(size=(frames, N)) * (0.2 + speaking[:, None]), axis=0)
    truth = {"motion": {"speaking": speaking.astype(float).tolist()}, "events": []}
    return ClipFeatures(key, key[:4], split, (path + 3.0).astype(np.float32), audio, truth)


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> str:
    """train: 2 files of 50- and 20-frame clips (one per rank); val: 1 file; info.json."""
    rng, storage = np.random.default_rng(0), Storage()
    root = str(tmp_path_factory.mktemp("features") / "features")
    for name, lengths in (("train-000000", (50, 20, 50)), ("train-000001", (20, 50))):
        write_feature_file([synthetic_clip(f"id{i}/{name}", "train", t, rng) for i, t in enumerate(lengths)],
                           f"{root}/train/{name}.parquet", storage)
    write_feature_file([synthetic_clip(f"idv{i}/val", "val", t, rng) for i, t in enumerate((50, 20, 50))],
                       f"{root}/val/val-000000.parquet", storage)
    write_info(root, {"nl_dim": N, "audio_dim": A}, storage)
    return root


@pytest.fixture(scope="module")
def ray_train(ray_local):
    """The session's Ray, with Ray Train's controller polling its workers often (checkpoints register sooner)."""
    previous = os.environ.get("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S")
    os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = "0.5"
    yield ray_local
    if previous is None:
        os.environ.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)
    else:
        os.environ["RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"] = previous


def common(features: str, root: Path) -> dict:
    """The fields both stages share: 2 workers, batch 4, 3 updates, a checkpoint (with validation) at update 2."""
    schedule = ScheduleParams(
        batch_size=BATCH, accum_rounds=1, total_samples=STEPS * BATCH, lr=1e-3, warmup_samples=BATCH,
        decay_samples=8 * BATCH, min_lr_ratio=0.1, grad_clip=1.0, ema_decay=0.5, log_every_samples=BATCH,
        checkpoint_every_samples=2 * BATCH, seed=3, max_failures=0, mixed_precision=False)
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "mlruns"),
                              experiment="test-prior", pipeline_id="test-pipeline")
    return dict(data=PriorDataParams(window=WINDOW), schedule=schedule,
                scaling=ScalingParams(num_workers=2, use_gpu=False, cpus_per_worker=1), features=features,
                work=str(root / "work"), out=str(root / "snapshot.pt"), tracking=tracking, s3=S3Config(),
                ray=RayConfig(address="", num_cpus=2))


def prior_config(features: str, root: Path) -> PriorConfig:
    validation = PriorValidationParams(max_clips=3, figure_clips=2, figure_components=3, seed=0, guidance=2.5,
                                       sampler="ddim", num_steps=4, eta=0.0, num_seeds=2, guidance_rescale=1.0)
    return PriorConfig(model="tiny", diffusion=DiffusionConfig(num_steps=100), validation=validation,
                       **common(features, root))


def ar_config(features: str, root: Path) -> PriorARConfig:
    validation = ValidationParams(max_clips=3, figure_clips=2, figure_components=3, seed=0)
    return PriorARConfig(model="tiny", autoregressive=AutoregressiveConfig(lambda_vel=0.5), validation=validation,
                         **common(features, root))


def only_run(cfg, stage: str):
    client = MlflowClient(cfg.tracking.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("test-prior").experiment_id],
                                f"tags.`thpad.stage` = '{stage}'")
    return client, run


def check_run(cfg, stage: str, val_keys: set[str], train_keys: set[str]) -> None:
    """The MLflow run: finished, params, every training step logged, validation at the checkpoint and the
    end, the figure, the config and the snapshot."""
    client, run = only_run(cfg, stage)
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "tiny" and run.data.params["data.window"] == str(WINDOW)
    assert run.data.params["validation.max_clips"] == "3"
    assert val_keys | train_keys <= set(run.data.metrics), sorted(val_keys | train_keys - set(run.data.metrics))
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == [1, 2, 3]
    key = sorted(val_keys)[0]
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) == [2, 3]
    assert all(np.isfinite(run.data.metrics[k]) for k in val_keys)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"trajectories.png", "config.json", "networks.json", "snapshot"} <= artifacts
    assert [a.path for a in client.list_artifacts(run.info.run_id, "snapshot")] == ["snapshot/snapshot.pt"]


def check_snapshot(cfg, result, features: str) -> tuple[dict, torch.nn.Module]:
    """The snapshot rebuilds strictly, holds the final EMA weights, and un-normalises with the statistics of
    all train clips (both ranks' files)."""
    config, state = read_snapshot(cfg.out)
    net = build_prior(config)
    net.load_state_dict(state, strict=True)
    with result.checkpoint.as_directory() as folder:
        ema = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)["ema"]
    assert all(torch.equal(state[k], ema[k]) for k in state)
    assert config["window"] == WINDOW and (net.cfg.nl_dim, net.cfg.audio_dim) == (N, A)
    train = read_split(features, "train", Storage())
    norm = prior_normalisation(config)
    np.testing.assert_allclose(norm.nl_mean, np.concatenate([c.f_nl for c in train]).mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(norm.audio_std, np.concatenate([c.f_a for c in train]).std(0), rtol=1e-4)
    return config, net.eval()


def test_diffusion_prior_trains_validates_and_writes_a_sampling_snapshot(features, ray_train, tmp_path) -> None:
    cfg = prior_config(features, tmp_path)
    result = train_prior(cfg)
    assert result.metrics["step"] == STEPS and result.metrics["cur_nsamples"] == STEPS * BATCH
    config, net = check_snapshot(cfg, result, features)
    assert not net.cfg.causal and config["diffusion"]["num_steps"] == 100
    sampler, f_a = SamplerConfig(guidance=2.5, sampler="ddim", num_steps=3), np.random.default_rng(0).normal(
        size=(2, 70, A)).astype(np.float32)  # (B, L, A) raw audio features, L > WINDOW: chained windows
    long = generate_nl(net, config, f_a, sampler, torch.Generator().manual_seed(0))
    assert long.shape == (2, 70, N) and np.isfinite(long).all()
    # Within one window, generate_nl is the sampler on normalised audio, un-normalised.
    norm = prior_normalisation(config)
    x = sample(net, prior_schedule(config), sampler, torch.from_numpy(norm.normalise_audio(f_a[:, :20])), N,
               generator=torch.Generator().manual_seed(0))  # (B, T, N)
    np.testing.assert_allclose(generate_nl(net, config, f_a[:, :20], sampler, torch.Generator().manual_seed(0)),
                               norm.unnormalise_nl(x.numpy()), rtol=1e-5, atol=1e-5)
    val_keys = {f"val/{m}_s{s}" for m in ("fd", "fd_vel", "speed_corr", "gesture") for s in ("2.5", "0")}
    check_run(cfg, "train_prior", val_keys | {"val/gesture_truth"}, {"train/loss", "train/x0", "train/vel",
                                                                      "train/lr", "train/samples_per_s"})
    files = export(result, "train_prior", tmp_path, lambda m: guidance_free_names(m, cfg.validation.guidance))
    figures = {f"val.{s}.{m}" for s in ("guided", "unguided") for m in ("fd", "fd_vel", "speed_corr", "gesture")}
    assert_finite(files, figures | {"val.gesture_truth", "step", "samples", "train.loss", "train.x0", "train.vel"})
    assert files.metrics["val"]["guided"]["fd"] == result.metrics["val/fd_s2.5"]
    assert files.metrics["val"]["unguided"]["fd"] == result.metrics["val/fd_s0"]
    assert files.steps("loss") == [1, 2, 3] and files.steps("val") == [2, 3]
    assert {"val/guided/fd", "val/unguided/fd_vel"} <= set(files.val[0])


def test_ar_prior_trains_validates_and_writes_a_sampling_snapshot(features, ray_train, tmp_path) -> None:
    cfg = ar_config(features, tmp_path)
    result = train_prior_ar(cfg)
    assert result.metrics["step"] == STEPS
    config, net = check_snapshot(cfg, result, features)
    assert net.cfg.causal and not net.cfg.use_timestep and config["autoregressive"]["lambda_vel"] == 0.5
    x = ar_sample(net, torch.randn(2, 20, A))
    assert x.shape == (2, 20, N) and bool(torch.isfinite(x).all())
    long = generate_nl(net, config, np.random.default_rng(0).normal(size=(2, 70, A)).astype(np.float32))
    assert long.shape == (2, 70, N) and np.isfinite(long).all()
    val_keys = {"val/fd", "val/fd_vel", "val/speed_corr", "val/gesture", "val/gesture_truth"}
    check_run(cfg, "train_prior_ar", val_keys, {"train/loss", "train/mse", "train/vel", "train/samples_per_s"})
    files = export(result, "train_prior_ar", tmp_path)
    assert_finite(files, {k.replace("/", ".") for k in val_keys} | {"step", "samples", "train.loss", "train.mse"})
    assert files.steps("loss") == [1, 2, 3] and files.steps("val") == [2, 3]


def test_configs_round_trip_and_refuse_bad_sizes(tmp_path) -> None:
    cfg = prior_config("features", tmp_path)
    assert from_dict(PriorConfig, to_dict(cfg)) == cfg
    assert from_dict(PriorARConfig, to_dict(ar_config("features", tmp_path))) == ar_config("features", tmp_path)
    with pytest.raises(ValueError, match="max_frames"):
        dataclasses.replace(cfg, data=PriorDataParams(window=129))
    with pytest.raises(ValueError, match="not divisible"):
        dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, batch_size=5))
    with pytest.raises(ValueError, match="validation.num_steps"):
        dataclasses.replace(cfg, validation=dataclasses.replace(cfg.validation, num_steps=101))
    with pytest.raises(ConfigError, match="validation.sampler"):
        from_dict(PriorConfig, {**to_dict(cfg), "validation": {**to_dict(cfg.validation), "sampler": "euler"}})
    with pytest.raises(ValueError, match="guidance_rescale"):
        dataclasses.replace(cfg.validation, guidance_rescale=1.5)


def test_validation_settings_do_not_change_the_run_key(tmp_path) -> None:
    cfg = prior_config("features", tmp_path)
    key = run_key(to_dict(cfg), {"features": "a"})
    evaluated = dataclasses.replace(cfg, validation=dataclasses.replace(cfg.validation, guidance=5.0, num_steps=20,
                                                                        guidance_rescale=0.0))
    assert run_key(to_dict(evaluated), {"features": "a"}) == key  # sampling settings are not training params
    trained = dataclasses.replace(cfg, diffusion=dataclasses.replace(cfg.diffusion, cond_dropout=0.2))
    assert run_key(to_dict(trained), {"features": "a"}) != key
    assert run_key(to_dict(cfg), {"features": "b"}) != key  # changed features start fresh


def test_killed_worker_of_a_prior_restarts_from_its_last_checkpoint(features, ray_train, tmp_path) -> None:
    # Both priors share motion_loop's resume path; the AR prior is the cheaper one to run twice.
    cfg = dataclasses.replace(ar_config(features, tmp_path),
                              schedule=dataclasses.replace(common(features, tmp_path)["schedule"], max_failures=1))
    result = train_prior_ar(cfg, fail_at_step=3)  # rank 1 SIGKILLs itself after update 3, once
    assert result.metrics["step"] == STEPS
    client, run = only_run(cfg, "train_prior_ar")
    assert run.info.status == "FINISHED"
    resumed = [int(m.value) for m in client.get_metric_history(run.info.run_id, "progress/resumed_from_nsamples")]
    assert resumed == [2 * BATCH]  # restarted once, from the checkpoint at update 2
    assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))[-1] == STEPS
    files = export(result, "train_prior_ar", tmp_path)  # step 3 ran twice; the plots hold it once
    assert files.steps("loss") == [1, 2, 3] and files.steps("val") == [2, 3]
