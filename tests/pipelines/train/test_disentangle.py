"""Stage 2 (``train_disentangle``): the motion probe's math, phases and learning rates, input checks (no Ray), and
two Ray Train runs with 2 workers on the micro corpus: one through the phase boundary (snapshot, MLflow run,
artifacts, phase two freezing all but G and D, the stage's DVC metrics and plots), then a longer rerun that resumes
it (its plots still hold the whole curve)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import typer
from mlflow.tracking import MlflowClient

from tests.pipelines.train.dvc_files import assert_finite, export
from thpad.codec import to_dict
from thpad.models.contrastive_net import build_net
from thpad.models.generator.warp import WarpFields
from thpad.models.losses import LossWeights
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHeadOutput, build_talking_head
from thpad.pipelines.metrics.probe import (
    clip_folds,
    partial_correlations,
    probe_correlations,
    probe_groups,
    probe_predictions,
)
from thpad.pipelines.ray_env import RayConfig
from thpad.pipelines.train.config import ScalingParams, ScheduleParams
from thpad.pipelines.train.disentangle.augment import AugmentConfig
from thpad.pipelines.train.disentangle.config import (
    DisentangleConfig,
    DisentangleDataParams,
    DisentangleLossParams,
    DisentangleValidationParams,
    FeatureLossParams,
    LearningRateScales,
    PhaseTwoParams,
    PixelPretrainParams,
)
from thpad.pipelines.train.disentangle.data import make_round, mouth_boxes
from thpad.pipelines.train.disentangle.inputs import StageInputError, read_contrastive
from thpad.pipelines.train.disentangle.loop import train_disentangle
from thpad.pipelines.train.disentangle.losses import pixel_terms, pretrain_pixels, pretrain_visual
from thpad.pipelines.train.disentangle.networks import (
    PHASE_ONE,
    PHASE_TWO,
    apply_phase,
    build_landmark_head,
    build_networks,
    group_learning_rates,
)
from thpad.pipelines.train.harness import STATE_FILE
from thpad.pipelines.train.landmark_motion import LandmarkMotionParams
from thpad.stages.train_disentangle import run_command
from thpad.storage.checkpoint import read_snapshot, save_snapshot
from thpad.storage.tracking import NullRun, TrackingConfig
from thpad.storage.uri import S3Config, Storage

BATCH = 4  # 2 per worker
STEPS = 4
PHASE_TWO_AT = 2 * BATCH  # updates 3 and 4 train only G and D
CHECKPOINT_EVERY = 2 * BATCH
TARGETS = ("yaw", "pitch", "roll", "blink")


def stage_one_snapshot(path: Path, audio_changes: dict | None = None) -> str:
    """A fresh (untrained) stage-1 network saved as train_contrastive would (optionally another E_a preset)."""
    preset = TALKING_HEAD_PRESETS["tiny"]
    audio = dataclasses.replace(preset.audio, **(audio_changes or {}))
    config = {"audio": to_dict(audio), "visual": to_dict(preset.visual), "init_temperature": 0.07}
    torch.manual_seed(0)
    save_snapshot(path, config, build_net(config))
    return str(path)


def make_config(shards: str, contrastive: str, root: Path, total_steps: int) -> DisentangleConfig:
    """The tiny stage config: 2 workers, batch 4, phase two and a checkpoint after update 2."""
    schedule = ScheduleParams(
        batch_size=BATCH, accum_rounds=1, total_samples=total_steps * BATCH, lr=1e-3, warmup_samples=BATCH,
        decay_samples=8 * BATCH, min_lr_ratio=0.1, grad_clip=1.0, ema_decay=0.5, log_every_samples=BATCH,
        checkpoint_every_samples=CHECKPOINT_EVERY, seed=3, max_failures=0, mixed_precision=False)
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "mlruns"),
                              experiment="test-train", pipeline_id="test-pipeline")
    return DisentangleConfig(
        model="tiny", renderer="warp", discriminator="tiny", memory_bank="tiny", identity_weights=None,
        train_visual_backbone=True,
        train_audio_encoder=False, betas=(0.5, 0.999),
        lr_scale=LearningRateScales(identity=1.0, visual=0.5, audio=1.0, generator=1.0, discriminator=0.5),
        phase_two=PhaseTwoParams(start_samples=PHASE_TWO_AT, lr=5e-4, warmup_samples=0, decay_samples=8 * BATCH,
                                 min_lr_ratio=0.1),
        loss=DisentangleLossParams(gan_kind="nonsaturating",
                                   weights=LossWeights(pix=1.0, mouth=1.0, lmk=1.0, corr=1.0, bound=1.0),
                                   pixel_scales=2,
                                   landmark_motion=LandmarkMotionParams(points=(17, 48), min_std=0.25,
                                                                         pretrain_samples=2 * BATCH, pretrain_lr=1e-3)),
        pixel_pretrain=PixelPretrainParams(samples=2 * BATCH, lr=1e-3),
        feature_losses=FeatureLossParams(vgg="tiny", vgg_weights=None, vgg_layer_weights=(1 / 32, 1 / 16, 1 / 8,
                                         1 / 4, 1.0), gaze="tiny", gaze_weights=None, gaze_distance="l1",
                                         allow_random_features=False),
        augment=AugmentConfig(),
        data=DisentangleDataParams(num_identity_frames=2, min_identity_distance=5, samples_per_clip=2,
                                   shuffle_buffer=4, loader_workers=0),
        validation=DisentangleValidationParams(clips=2, frames_per_clip=8, recon_frames_per_clip=3, grid_rows=3,
                                 probe_targets=TARGETS, probe_folds=2, probe_ridge=1.0),
        schedule=schedule, scaling=ScalingParams(num_workers=2, use_gpu=False, cpus_per_worker=1),
        contrastive=contrastive, shards=shards, work=str(root / "work"), out=str(root / "disentangle.pt"),
        tracking=tracking, s3=S3Config(), ray=RayConfig(address="", num_cpus=2))


# The probe: no Ray.

def test_probe_finds_a_linear_code_and_nothing_in_noise() -> None:
    rng = np.random.default_rng(0)
    clips = np.repeat(np.arange(8), 40)  # (320,)
    target = rng.normal(size=320) + clips * 0.3  # (320,) varies within and across clips
    mixing = rng.normal(size=(1, 12))
    coded = target[:, None] @ mixing + 0.05 * rng.normal(size=(320, 12))  # (320, 12) linear in the target
    noise = rng.normal(size=(320, 12))
    assert probe_correlations(coded, {"t": target}, clips)["t"] > 0.98
    assert abs(probe_correlations(noise, {"t": target}, clips)["t"]) < 0.2
    # A feature that only knows each clip's mean of the target scores high across clips, not within them.
    clip_means = np.stack([target[clips == c].mean() for c in range(8)])[clips][:, None] * mixing  # (320, 12)
    assert probe_correlations(clip_means, {"t": target}, clips)["t"] > 0.5
    assert abs(probe_correlations(clip_means, {"t": target}, clips, within_groups=True)["t"]) < 0.2
    assert probe_correlations(coded, {"t": target}, clips, within_groups=True)["t"] > 0.98


def test_partial_probe_does_not_credit_a_correlated_target() -> None:
    rng = np.random.default_rng(1)
    clips = np.repeat(np.arange(8), 60)  # (480,)
    roll = rng.normal(size=480)
    yaw = 0.8 * roll + 0.6 * rng.normal(size=480)  # (480,) moves with roll, as the corpus's pose paths do
    blink = rng.normal(size=480)
    knows_roll = roll[:, None] @ rng.normal(size=(1, 6)) + 0.05 * rng.normal(size=(480, 6))  # (480, 6)
    targets = {"yaw": yaw, "roll": roll, "blink": blink}
    plain = probe_correlations(knows_roll, targets, clips)
    pred, truth = probe_predictions(knows_roll, targets, clips)  # (480, 3) each
    partial = partial_correlations(pred, truth, list(targets))
    assert plain["yaw"] > 0.7 and abs(partial["yaw"]) < 0.2  # yaw scored through roll, then not
    assert plain["roll"] > 0.98 and partial["roll"] > 0.95
    assert abs(partial["blink"]) < 0.2
    alone = partial_correlations(pred[:, 1:2], truth[:, 1:2], ["roll"])  # one target: the plain r
    assert alone["roll"] == pytest.approx(plain["roll"])


def test_probe_folds_keep_clips_whole_and_fall_back_to_time_blocks() -> None:
    clips = np.array([5, 5, 2, 2, 9, 9, 5])
    folds = clip_folds(clips, 2)
    assert folds.tolist() == [0, 0, 1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="1 clips cannot fill 2 folds"):
        clip_folds(np.zeros(4, int), 2)
    one_clip = probe_groups(np.zeros(6, int), np.array([9, 1, 3, 5, 7, 11]), 2)
    assert one_clip.tolist() == [1, 0, 0, 0, 1, 1]  # frames 1, 3, 5 vs 7, 9, 11
    assert probe_groups(clips, np.arange(7), 2).tolist() == clips.tolist()


# Phases, learning rates and inputs: no Ray.

def test_phase_two_freezes_all_but_the_generator_and_switches_schedules(tmp_path) -> None:
    cfg = make_config("shards", stage_one_snapshot(tmp_path / "c.pt"), tmp_path, STEPS)
    head, scale, _ = build_networks(cfg, read_contrastive(cfg.contrastive, Storage(), "tiny"))
    landmark = build_landmark_head(cfg)
    assert landmark is not None and landmark.out_features == 4 + 2 * 31  # rigid + x, y of points 17..47
    apply_phase(head, scale, cfg, PHASE_ONE, landmark)
    trained = {n.split(".")[0] for n, p in head.named_parameters() if p.requires_grad}
    assert trained == {"identity_encoder", "visual_encoder", "mlp_a2l", "generator"}  # E_a stays frozen
    assert not head.audio_encoder.training and head.visual_encoder.backbone.training
    assert landmark.weight.requires_grad  # L_lmk's head trains with E_v
    apply_phase(head, scale, cfg, PHASE_TWO, landmark)
    assert {n.split(".")[0] for n, p in head.named_parameters() if p.requires_grad} == {"generator"}
    assert not landmark.weight.requires_grad
    off = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, weights=LossWeights()),
                              pixel_pretrain=PixelPretrainParams(samples=0))
    assert build_landmark_head(off) is None  # lmk 0 (the paper): no head, no targets
    assert not head.visual_encoder.backbone.training and not scale.log_scale.requires_grad
    before, after = group_learning_rates(PHASE_TWO_AT - BATCH, cfg), group_learning_rates(PHASE_TWO_AT, cfg)
    assert before["generator"] > 0 and before["visual"] == pytest.approx(0.5 * before["generator"])
    assert after == pytest.approx({"identity": 0.0, "visual": 0.0, "audio": 0.0, "generator": 5e-4,
                                   "discriminator": 2.5e-4})


@pytest.mark.parametrize("augmented", [False, True])
def test_pretraining_reads_augmented_frames_only_when_asked(tmp_path, monkeypatch, augmented: bool) -> None:
    """``augment.in_pretraining`` false: E_v's L_lmk pretraining reads the driving frames as they are (the
    augmentation is never called) and still trains E_v; true: they pass through LPD's augmentation."""
    cfg = make_config("shards", stage_one_snapshot(tmp_path / "c.pt"), tmp_path, STEPS)
    cfg = dataclasses.replace(cfg, augment=AugmentConfig(in_pretraining=augmented))
    head, _, _ = build_networks(cfg, read_contrastive(cfg.contrastive, Storage(), "tiny"))
    landmark = build_landmark_head(cfg)
    size = TALKING_HEAD_PRESETS["tiny"].visual.image_size

    def refuse(*_: object) -> None:
        raise RuntimeError("augmented")

    monkeypatch.setattr("thpad.pipelines.train.disentangle.data.augment_frames", refuse)
    torch.manual_seed(0)
    batch = {"image": torch.rand(BATCH, 3, size, size) * 2 - 1,  # (B, 3, S, S)
             "landmark_motion": torch.randn(BATCH, landmark.out_features)}  # (B, D)
    batches = iter([(0, 0, batch)] * 2)
    before = [p.detach().clone() for p in head.visual_encoder.parameters()]
    if augmented:
        with pytest.raises(RuntimeError, match="augmented"):
            pretrain_visual(head, landmark, batches, cfg, torch.device("cpu"), 1, NullRun())
        return
    pretrain_visual(head, landmark, batches, cfg, torch.device("cpu"), 1, NullRun())
    changed = [not torch.equal(a, b) for a, b in zip(before, head.visual_encoder.parameters(), strict=True)]
    assert any(changed)


def test_mouth_boxes_hold_the_lip_points_widened_by_the_pad() -> None:
    landmarks = torch.zeros(2, 68, 2)  # (B, 68, 2)
    landmarks[:, 48:68] = torch.tensor([[20.0, 30.0], [36.0, 38.0]]).repeat(10, 1)  # lips span x 20-36, y 30-38
    landmarks[1, 48:68] += 5.0
    boxes = mouth_boxes(landmarks, 0.25)  # (B, 4)
    torch.testing.assert_close(boxes[0], torch.tensor([16.0, 28.0, 40.0, 40.0]))  # +-4 in x, +-2 in y
    torch.testing.assert_close(boxes[1], boxes[0] + 5.0)
    torch.testing.assert_close(mouth_boxes(landmarks, 0.0)[0], torch.tensor([20.0, 30.0, 36.0, 38.0]))


def test_l_corr_is_zero_for_the_warp_that_maps_the_driving_landmarks_onto_the_photos(tmp_path) -> None:
    """L_corr compares where the warp reads the photo at the driving frame's landmarks with the photo's own
    landmarks: the photo's face sits 3 px right of the driving frame's, so a warp that reads 3 px to the right scores
    0 and the identity warp 3 px in x (3 / S in grid units, averaged over x and y)."""
    cfg = make_config("shards", "c.pt", tmp_path, STEPS)
    S, g = 56, torch.Generator().manual_seed(0)
    landmarks = torch.rand(2, 68, 2, generator=g) * 40 + 8  # (B, 68, 2) pixels
    batch = {"image": torch.zeros(2, 3, S, S), "identity_images": torch.zeros(2, 2, 3, S, S),
             "mel": torch.zeros(2, 80, 20), "landmarks": landmarks,
             "identity_landmarks": torch.stack([landmarks + torch.tensor([3.0, 0.0]), landmarks], dim=1)}
    r = make_round(batch, cfg, torch.device("cpu"), augment=False)
    torch.testing.assert_close(r.landmarks, (2 * landmarks + 1) / S - 1)  # grid_sample's coordinates

    def terms(shift_px: float) -> dict[str, torch.Tensor]:
        theta = torch.tensor([[1.0, 0.0, shift_px * 2 / S], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
        fields = WarpFields(theta, torch.zeros(2, 2, S, S), torch.ones(2, 1, S, S), torch.zeros(2, 3, S, S))
        return pixel_terms(TalkingHeadOutput(*[None] * 9, r.real, fields), r, cfg)  # type: ignore[arg-type]

    assert float(terms(3.0)["corr"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms(0.0)["corr"]) == pytest.approx(3.0 / S, rel=1e-4)
    assert "corr" not in pixel_terms(TalkingHeadOutput(*[None] * 9, r.real), r, cfg)  # type: ignore[arg-type]
    lips = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, corr_lip_weight=0.0))
    r = r._replace(photo_landmarks=r.photo_landmarks.clone())
    r.photo_landmarks[:, 48:68] += 1.0  # the lips far off: with lip weight 0 they do not count
    theta = torch.tensor([[1.0, 0.0, 3.0 * 2 / S], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    fields = WarpFields(theta, torch.zeros(2, 2, S, S), torch.ones(2, 1, S, S), torch.zeros(2, 3, S, S))
    out = TalkingHeadOutput(*[None] * 9, r.real, fields)  # type: ignore[arg-type]
    assert float(pixel_terms(out, r, lips)["corr"]) == pytest.approx(0.0, abs=1e-6)
    assert float(pixel_terms(out, r, cfg)["corr"]) == pytest.approx(20 / 68, rel=1e-4)  # 1 off in x and y


def test_l_bound_pulls_saturated_warp_logits_back(tmp_path) -> None:
    cfg = make_config("shards", "c.pt", tmp_path, STEPS)
    S = 56
    batch = {"image": torch.zeros(2, 3, S, S), "identity_images": torch.zeros(2, 1, 3, S, S),
             "mel": torch.zeros(2, 80, 20), "landmarks": torch.full((2, 68, 2), 20.0),
             "identity_landmarks": torch.full((2, 1, 68, 2), 20.0)}
    r = make_round(batch, cfg, torch.device("cpu"), augment=False)
    theta = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    logits = torch.zeros(2, 10)
    logits[0, 0] = cfg.loss.bound_limit + 2.0  # one saturated logit
    fields = WarpFields(theta, torch.zeros(2, 2, S, S), torch.ones(2, 1, S, S), torch.zeros(2, 3, S, S), logits)
    terms = pixel_terms(TalkingHeadOutput(*[None] * 9, r.real, fields), r, cfg)  # type: ignore[arg-type]
    assert float(terms["bound"]) == pytest.approx(2.0 / 20)
    assert float(terms["corr"]) == pytest.approx(0.0, abs=1e-6)


def test_l_corr_needs_the_warping_renderer(tmp_path) -> None:
    cfg = make_config("shards", "c.pt", tmp_path, STEPS)
    with pytest.raises(ValueError, match="loss.weights.corr .* needs renderer: warp"):
        dataclasses.replace(cfg, renderer="synthesis")


def test_pixel_pretraining_trains_the_renderer_and_encoders_on_clean_frames(tmp_path, monkeypatch) -> None:
    """``pixel_pretrain``: E_id, E_v, MLP_a2l and the renderer learn from L_pix, L_mouth and L_lmk without the
    GAN; E_a stays frozen, and the driving frames are read as they are (the augmentation is never called)."""
    cfg = make_config("shards", stage_one_snapshot(tmp_path / "c.pt"), tmp_path, STEPS)
    cfg = dataclasses.replace(cfg, augment=AugmentConfig(in_pretraining=False))
    head, scale, _ = build_networks(cfg, read_contrastive(cfg.contrastive, Storage(), "tiny"))
    landmark = build_landmark_head(cfg)
    preset = TALKING_HEAD_PRESETS["tiny"]
    size = preset.visual.image_size

    def refuse(*_: object) -> None:
        raise RuntimeError("augmented")

    monkeypatch.setattr("thpad.pipelines.train.disentangle.data.augment_frames", refuse)
    torch.manual_seed(0)
    frames = torch.rand(BATCH, 3, 3, size, size) * 2 - 1  # (B, 1 driving + 2 identity, 3, S, S)
    batch = {"image": frames[:, 0], "identity_images": frames[:, 1:],
             "mel": torch.randn(BATCH, preset.audio.n_mels, preset.audio.n_frames),  # (B, n_mels, n_frames)
             "landmarks": torch.rand(BATCH, 68, 2) * size,  # (B, 68, 2)
             "identity_landmarks": torch.rand(BATCH, 2, 68, 2) * size,  # (B, K, 68, 2)
             "landmark_motion": torch.randn(BATCH, landmark.out_features)}  # (B, D)
    parts = {"generator": head.generator, "identity": head.identity_encoder, "visual": head.visual_encoder.mlp_nl,
             "lip": head.mlp_a2l, "audio": head.audio_encoder}
    before = {name: [p.detach().clone() for p in module.parameters()] for name, module in parts.items()}
    pretrain_pixels(head, scale, landmark, iter([(0, 0, batch)] * 2), cfg, torch.device("cpu"), 1, NullRun())
    changed = {name: any(not torch.equal(a, b) for a, b in zip(before[name], module.parameters(), strict=True))
               for name, module in parts.items()}
    assert changed == {"generator": True, "identity": True, "visual": True, "lip": True, "audio": False}
    assert not head.audio_encoder.training


def test_pixel_pretraining_without_a_pixel_loss_is_refused(tmp_path) -> None:
    cfg = make_config("shards", "c.pt", tmp_path, STEPS)
    no_pixels = dataclasses.replace(cfg.loss, weights=LossWeights(lmk=1.0))
    with pytest.raises(ValueError, match="pixel_pretrain.samples > 0 needs a reconstruction loss"):
        dataclasses.replace(cfg, loss=no_pixels)
    off = dataclasses.replace(cfg, loss=no_pixels, pixel_pretrain=PixelPretrainParams(samples=0))
    assert off.pixel_pretrain.samples == 0


def test_stage_one_snapshot_is_checked(tmp_path) -> None:
    missing = str(tmp_path / "nothing.pt")
    with pytest.raises(StageInputError, match="no stage-1 snapshot at .*nothing.pt"):
        read_contrastive(missing, Storage(), "tiny")
    other = stage_one_snapshot(tmp_path / "other.pt", {"attention_dim": 16})
    with pytest.raises(StageInputError, match="another model preset"):
        read_contrastive(other, Storage(), "tiny")


def test_stage_command_names_the_missing_stage_one_snapshot(tmp_path, capsys) -> None:
    cfg = make_config(str(tmp_path / "pre"), str(tmp_path / "models" / "contrastive.pt"), tmp_path, STEPS)
    with pytest.raises(typer.Exit) as exit_info:
        run_command(cfg)
    assert exit_info.value.exit_code == 2
    err = capsys.readouterr().err
    assert "contrastive.pt" in err and "train-contrastive" in err and "paths.contrastive" in err


# Ray Train runs.

def states_by_step(result) -> dict[int, dict]:
    """Rank 0's training state of every checkpoint Ray kept, by step."""
    states = {}
    for checkpoint, _ in result.best_checkpoints:
        with checkpoint.as_directory() as folder:
            state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True)
        states[state["step"]] = state
    return states


def stage_runs(cfg: DisentangleConfig) -> list:
    client = MlflowClient(cfg.tracking.tracking_uri)
    return client.search_runs([client.get_experiment_by_name("test-train").experiment_id],
                              "tags.`thpad.stage` = 'train_disentangle'", order_by=["attributes.start_time ASC"])


def metric_steps(cfg: DisentangleConfig, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in MlflowClient(cfg.tracking.tracking_uri).get_metric_history(run_id, key))


@pytest.fixture(scope="module")
def first_run(shards, tmp_path_factory):
    """STEPS updates through the phase boundary; the states of its two checkpoints are read at once (a rerun in
    the same folder replaces them)."""
    root = tmp_path_factory.mktemp("disentangle")
    cfg = make_config(shards, stage_one_snapshot(root / "contrastive.pt"), root, STEPS)
    result = train_disentangle(cfg)
    return cfg, result, states_by_step(result)


def test_run_writes_snapshot_metrics_and_artifacts(first_run, tmp_path) -> None:
    cfg, result, states = first_run
    assert result.metrics["step"] == STEPS and result.metrics["cur_nsamples"] == STEPS * BATCH
    config, state = read_snapshot(cfg.out)
    head = build_talking_head(config)
    head.load_state_dict(state, strict=True)
    for name, value in states[STEPS]["ema"].items():
        assert torch.equal(state[name], value), name

    (run,) = stage_runs(cfg)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["model"] == "tiny" and params["phase_two.start_samples"] == str(PHASE_TWO_AT)
    assert metric_steps(cfg, run.info.run_id, "train/loss_g") == list(range(1, STEPS + 1))
    assert metric_steps(cfg, run.info.run_id, "val/recon_l1") == [0, 2, 4]  # start, checkpoint, end
    keys = {"train/loss_d", "train/gan", "train/feat", "train/ol", "train/cl", "train/lmk", "train/lr_generator",
            "train/lr_discriminator", "train/samples_per_s", "val/recon_l1", "val/psnr", "val/nl_reliance",
            "val/nl_spread", *(f"val/{kind}_{f}/{t}" for kind in ("probe", "partial") for f in ("nl", "lip")
                               for t in TARGETS)}
    assert keys <= set(run.data.metrics), keys - set(run.data.metrics)
    assert "train/vgg" not in run.data.metrics and "train/gaze" not in run.data.metrics  # no weights: off
    assert "unavailable" in run.data.tags["thpad.loss.vgg"] and "unavailable" in run.data.tags["thpad.loss.gaze"]
    assert run.data.metrics["progress/phase"] == PHASE_TWO
    artifacts = {a.path for a in MlflowClient(cfg.tracking.tracking_uri).list_artifacts(run.info.run_id)}
    assert {"recon_grid.png", "config.json", "networks.json", "snapshot"} <= artifacts

    files = export(result, "train_disentangle", tmp_path)  # the DVC metrics and plots
    probes = {f"val.{kind}_{f}.{t}" for kind in ("probe", "partial") for f in ("nl", "lip") for t in TARGETS}
    assert_finite(files, {"step", "samples", "val.recon_l1", "val.psnr", "val.nl_reliance", "val.nl_spread", *probes,
                          "train.loss_g", "train.loss_d", "train.l1", "train.gan", "train.feat"})
    assert files.metrics["val"]["recon_l1"] == run.data.metrics["val/recon_l1"]
    assert files.metrics["samples"] == STEPS * BATCH and "ol" not in files.metrics["train"]  # phase two's terms
    assert files.steps("loss") == list(range(1, STEPS + 1)) and files.steps("val") == [0, 2, 4]
    assert "train/grad_norm_g" not in files.loss[0] and files.loss[0]["train/lmk"] and not files.loss[-1]["train/lmk"]


def test_phase_two_trains_only_generator_and_discriminator(first_run) -> None:
    cfg, _, states = first_run
    assert sorted(states) == [2, 4]  # the checkpoint at the boundary and the final one
    start = read_contrastive(cfg.contrastive, Storage(), "tiny")
    at_boundary, end = states[2], states[4]
    for name, value in start.audio_encoder.state_dict().items():  # E_a: frozen throughout
        assert torch.equal(end["model"][f"audio_encoder.{name}"], value), name
    backbone = start.visual_encoder.state_dict()
    assert any(not torch.equal(at_boundary["model"][f"visual_encoder.{n}"], v) for n, v in backbone.items())
    changed = {name for name, value in end["model"].items() if not torch.equal(value, at_boundary["model"][name])}
    assert changed and all(name.startswith("generator.") for name in changed), sorted(changed)[:5]
    assert any(not torch.equal(v, at_boundary["discriminator"][n]) for n, v in end["discriminator"].items())
    assert all(torch.equal(end["landmark_head"][n], v) for n, v in at_boundary["landmark_head"].items())
    (run,) = stage_runs(cfg)  # L_lmk is a phase-one term: logged at updates 1 and 2 only
    assert metric_steps(cfg, run.info.run_id, "train/lmk") == [1, 2]
    assert metric_steps(cfg, run.info.run_id, "pretrain/lmk") == [2]  # E_v's 2 pretraining updates, before step 1


def test_longer_rerun_resumes(first_run, shards, tmp_path) -> None:
    cfg, first, _ = first_run
    longer = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, total_samples=(STEPS + 2) * BATCH))
    resumed = train_disentangle(longer)
    assert resumed.path == first.path and resumed.metrics["step"] == STEPS + 2
    runs = stage_runs(cfg)
    assert [metric_steps(cfg, r.info.run_id, "train/loss_g") for r in runs] == [[1, 2, 3, 4], [5, 6]]
    resumed_from = MlflowClient(cfg.tracking.tracking_uri).get_metric_history(runs[1].info.run_id,
                                                                             "progress/resumed_from_nsamples")
    assert [int(m.value) for m in resumed_from] == [STEPS * BATCH]
    files = export(resumed, "train_disentangle", tmp_path)  # the first run's steps too, each once
    assert files.steps("loss") == list(range(1, STEPS + 3)) and files.steps("val") == [0, 2, 4, 6]
