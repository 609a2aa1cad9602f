"""Benchmark of the training stages: samples/s per stage at the tiny preset with 1 and 2 Ray Train workers
(scaling efficiency = speed with 2 / (2 x speed with 1)), and one optimisation step at the paper preset
(batch 1, this CPU) to size a GPU run. Prints one JSON object and a table.

Reads what ``make run`` built (``data/preprocessed``, ``data/models/contrastive.pt``, ``data/features``) and
writes only into a temporary folder. Speed is the median of the stage's own ``train/samples_per_s`` ticks
after the first (which includes start-up), read back from a throwaway MLflow store.

Usage: .venv/bin/python -m benchmarks.train [--params params.yaml] [--updates 60] [--stages a,b] [--skip-paper]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from thpad.models.autoregressive import AutoregressiveConfig, ar_training_loss
from thpad.models.contrastive_net import ContrastiveNet
from thpad.models.diffusion import NoiseSchedule, training_loss
from thpad.models.diffusion.process import DiffusionConfig
from thpad.models.generator.discriminator import DISCRIMINATOR_PRESETS, MultiscaleDiscriminator
from thpad.models.losses import adversarial_d_loss, adversarial_g_loss, feature_matching_loss, info_nce_loss
from thpad.models.motion_denoiser import DENOISER_PRESETS, MotionDenoiser
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead
from thpad.pipelines.train.contrastive.loop import train_contrastive as run_contrastive
from thpad.pipelines.train.disentangle.loop import train_disentangle as run_disentangle
from thpad.pipelines.train.prior.autoregressive import train_prior_ar as run_prior_ar
from thpad.pipelines.train.prior.diffusion import train_prior as run_prior
from thpad.stages.common import with_absolute_paths
from thpad.stages.params import load_params
from thpad.storage.tracking import TrackingConfig

STAGES: dict[str, Callable[[Any], Any]] = {"train_contrastive": run_contrastive, "train_disentangle": run_disentangle,
                                           "train_prior": run_prior, "train_prior_ar": run_prior_ar}


def stage_config(cfg: Any, workers: int, updates: int, root: Path) -> Any:
    """The stage's params with ``workers`` Ray workers, ``updates`` updates, a log tick every 5 updates, and
    its work, out and MLflow store in ``root`` (a fresh training state: nothing resumes), its inputs absolute."""
    s = cfg.schedule
    batch = s.batch_size - s.batch_size % (2 * s.accum_rounds)  # divisible by 1 and 2 workers
    schedule = dataclasses.replace(s, batch_size=batch, total_samples=updates * batch, log_every_samples=5 * batch,
                                   checkpoint_every_samples=10 * updates * batch)
    tracking = TrackingConfig(tracking_uri=f"sqlite:///{root}/mlflow.db", artifact_root=str(root / "mlruns"),
                              experiment="benchmark", pipeline_id=f"bench-{workers}")
    inputs = [f for f in ("shards", "contrastive", "features") if hasattr(cfg, f)]
    cfg = with_absolute_paths(cfg, *inputs)  # Ray workers run in folders of their own
    cfg = without_pretraining(cfg)
    return dataclasses.replace(cfg, schedule=schedule, scaling=dataclasses.replace(cfg.scaling, num_workers=workers),
                               work=str(root / "work"), out=str(root / "out.pt"), tracking=tracking)


def without_pretraining(cfg: Any) -> Any:
    """The stage's config without E_v's landmark pretraining (stage 1's warm-up, stage 2's L_lmk pretraining):
    it runs before the loop whose speed is measured and would only lengthen the benchmark."""
    if hasattr(cfg, "landmark_motion"):  # stage 1
        return dataclasses.replace(cfg, landmark_motion=dataclasses.replace(cfg.landmark_motion, pretrain_samples=0))
    if hasattr(cfg, "loss") and hasattr(cfg.loss, "landmark_motion"):  # stage 2
        motion = dataclasses.replace(cfg.loss.landmark_motion, pretrain_samples=0)
        return dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, landmark_motion=motion))
    return cfg


def measured_speed(tracking: TrackingConfig, stage: str) -> float:
    """Median ``train/samples_per_s`` of the stage's run, without its first tick."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id], f"tags.`thpad.stage` = '{stage}'")
    ticks = sorted(client.get_metric_history(run.info.run_id, "train/samples_per_s"), key=lambda m: m.step)
    values = [m.value for m in ticks[1:]] or [m.value for m in ticks]
    return statistics.median(values)


def tiny_speeds(params: Any, stages: list[str], updates: int) -> dict[str, dict[str, float]]:
    """samples/s with 1 and 2 workers per stage, and the scaling efficiency."""
    results = {}
    for stage in stages:
        speeds = {}
        for workers in (1, 2):
            with tempfile.TemporaryDirectory(prefix="thpad-bench-") as tmp:
                cfg = stage_config(getattr(params, stage), workers, updates, Path(tmp))
                start = time.perf_counter()
                STAGES[stage](cfg)
                speeds[workers] = (measured_speed(cfg.tracking, stage), time.perf_counter() - start)
        results[stage] = {"samples_per_s_1": round(speeds[1][0], 1), "samples_per_s_2": round(speeds[2][0], 1),
                          "scaling_efficiency": round(speeds[2][0] / (2 * speeds[1][0]), 2),
                          "wall_s_1": round(speeds[1][1], 1), "wall_s_2": round(speeds[2][1], 1)}
    return results


def _timed_step(step: Callable[[], torch.Tensor], params: list[torch.nn.Parameter]) -> float:
    """Seconds of one forward + backward + Adam step (after one warm-up step)."""
    optimizer = torch.optim.Adam(params, lr=1e-4)
    times = []
    for _ in range(2):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        step().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return times[-1]


def paper_steps() -> dict[str, float]:
    """One optimisation step per stage at the paper preset, batch 1 (batch 2 for InfoNCE, which needs a pair)."""
    torch.manual_seed(0)
    preset = TALKING_HEAD_PRESETS["paper"]
    size = preset.visual.image_size
    mel = torch.rand(2, 1, preset.audio.n_mels, preset.audio.n_frames)  # (2, 1, 80, 20)
    image = torch.rand(2, 3, size, size) * 2 - 1  # (2, 3, 224, 224)
    out: dict[str, float] = {}

    net = ContrastiveNet(preset.audio, preset.visual, 0.07)
    out["train_contrastive"] = _timed_step(lambda: info_nce_loss(*net(mel, image)[:2], net.logit_scale()),
                                           [p for p in net.parameters() if p.requires_grad])

    head, disc = TalkingHead(preset), MultiscaleDiscriminator(DISCRIMINATOR_PRESETS["paper"])

    def disentangle_step() -> torch.Tensor:  # D on real and fake, then G with adversarial + feature matching
        o = head(image[:1, None], image[:1], mel[:1])
        real = disc(image[:1])
        d_loss = adversarial_d_loss([r.logits for r in real], [f.logits for f in disc(o.image.detach())],
                                    "nonsaturating")
        fake = disc(o.image)
        return (d_loss + adversarial_g_loss([f.logits for f in fake], "nonsaturating")
                + feature_matching_loss([r.features for r in real], [f.features for f in fake]))

    out["train_disentangle"] = _timed_step(disentangle_step, [*head.parameters(), *disc.parameters()])

    denoiser_cfg = DENOISER_PRESETS["paper"]
    window = denoiser_cfg.max_frames
    x0 = torch.randn(1, window, denoiser_cfg.nl_dim)  # (1, 128, 42)
    audio = torch.randn(1, window, denoiser_cfg.audio_dim)  # (1, 128, 512)
    prior, schedule = MotionDenoiser(denoiser_cfg), NoiseSchedule(DiffusionConfig())
    out["train_prior"] = _timed_step(lambda: training_loss(prior, schedule, DiffusionConfig(), x0, audio)["loss"],
                                     list(prior.parameters()))
    ar = MotionDenoiser(dataclasses.replace(denoiser_cfg, causal=True, use_timestep=False))
    out["train_prior_ar"] = _timed_step(lambda: ar_training_loss(ar, AutoregressiveConfig(), x0, audio)["loss"],
                                        list(ar.parameters()))
    return {stage: round(seconds, 3) for stage, seconds in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--updates", type=int, default=60, help="updates per measured run")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated stage names")
    parser.add_argument("--skip-paper", action="store_true", help="skip the paper-preset step")
    args = parser.parse_args()
    params = load_params(args.params)
    stages = [s for s in args.stages.split(",") if s]
    unknown = set(stages) - set(STAGES)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; choose from {list(STAGES)}")
    report = {"machine": {"cpus": torch.get_num_threads(), "python": platform.python_version(),
                          "torch": torch.__version__},
              "tiny": tiny_speeds(params, stages, args.updates),
              "paper_step_s_batch1": {} if args.skip_paper else paper_steps()}
    print(json.dumps(report, indent=2))
    print(f"\n{'stage':<20}{'1 worker':>12}{'2 workers':>12}{'efficiency':>12}{'paper step (s)':>16}")
    for stage, row in report["tiny"].items():
        print(f"{stage:<20}{row['samples_per_s_1']:>12}{row['samples_per_s_2']:>12}{row['scaling_efficiency']:>12}"
              f"{report['paper_step_s_batch1'].get(stage, float('nan')):>16}")


if __name__ == "__main__":
    main()
