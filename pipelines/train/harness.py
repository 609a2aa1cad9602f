"""What every training stage shares: running a loop on Ray Train, keyed training states, seeds, EMA and the
learning-rate schedule (issue 5, "Each training stage"; EDM's training_loop.py for the tick structure).

A stage's training state lives in ``WORK/ray_train/{stage}-{key}``, where ``key`` hashes the stage's config
(minus the fields that may change without invalidating the state, ``RESUMABLE_FIELDS``) and the hashes
of its inputs. Ray Train V2 has no ``Trainer.restore``: a new ``fit`` with the same ``RunConfig(name,
storage_path)`` reloads the run's checkpoint list and hands the latest to ``ray.train.get_checkpoint()``.
So a rerun with the same config and inputs resumes, a changed config gets a fresh folder, and a killed
worker restarts from the last checkpoint (``FailureConfig``). The stage's DVC out is the final snapshot,
copied by the driver out of the last checkpoint, where rank 0 wrote it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from thpad.codec import to_dict
from thpad.pipelines.ray_env import RayConfig, ensure_ray
from thpad.pipelines.train.config import ScalingParams, ScheduleParams, per_rank_batch
from thpad.storage.checkpoint import atomic_torch_save, save_snapshot
from thpad.storage.dvc_outputs import SAMPLES, STEP, TRAIN, VAL, Rename, write_training_outputs
from thpad.storage.fingerprint import bytes_fingerprint
from thpad.storage.tracking import StageRun, TrackingConfig, open_stage_run, resolve_tracking_config
from thpad.storage.uri import S3Config, Storage, is_s3, join

log = logging.getLogger(__name__)

STATE_FILE = "state.pt"  # rank 0: model, EMA, optimizer, step, cur_nsamples, history (and stage extras)
HISTORY_KEY = "history"  # the training state's entry holding the run's ``History``
OPTIONAL_STATE = (HISTORY_KEY,)  # entries that states written before they existed lack: those start empty
SNAPSHOT_FILE = "snapshot.pt"  # rank 0, final checkpoint only: EMA weights + JSON config
RAY_TRAIN_DIR = "ray_train"
KILL_DELAY_S = 5.0  # see kill_this_worker
# Config fields that may change between a run and its resumption (dotted; a prefix covers its children).
RESUMABLE_FIELDS = ("schedule.total_samples", "schedule.log_every_samples", "schedule.checkpoint_every_samples",
                    "schedule.max_failures", "scaling", "data.loader_workers", "shards", "contrastive", "disentangle",
                    "features", "work", "out", "tracking", "s3", "ray", "validation")
# Input fields ("shards", "contrastive", "disentangle", "features") enter the key by their content hashes
# (``input_hashes``), so moving an input changes nothing. "validation": evaluation settings (sampling guidance,
# steps), which the issue keeps out of the training params.


class TrainStageConfig(Protocol):
    """The fields ``run_training`` reads from a stage's config dataclass."""

    schedule: ScheduleParams
    scaling: ScalingParams
    work: str
    out: str
    tracking: TrackingConfig
    s3: S3Config
    ray: RayConfig


def _drop(tree: dict[str, Any], dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if rest and isinstance(tree.get(head), dict):
        _drop(tree[head], rest)
    elif not rest:
        tree.pop(head, None)


def run_key(config: Mapping[str, Any], input_hashes: Mapping[str, str],
            networks: Mapping[str, Any] | None = None) -> str:
    """16 hex digits of sha256 over the config (without ``RESUMABLE_FIELDS``), the input hashes and the resolved
    network configs: the config names presets, so a preset whose sizes change in code must change the key too."""
    kept = json.loads(json.dumps(config))
    for dotted in RESUMABLE_FIELDS:
        _drop(kept, dotted)
    blob = json.dumps({"config": kept, "inputs": dict(input_hashes), "networks": dict(networks or {})},
                      sort_keys=True)
    return bytes_fingerprint(blob.encode())






def storage_root(work: str) -> str:
    """Ray Train's ``storage_path``: ``WORK/ray_train`` (absolute when local, as Ray requires)."""
    return join(work, RAY_TRAIN_DIR) if is_s3(work) else str(Path(work).resolve() / RAY_TRAIN_DIR)


def run_training(loop_fn: Callable[[dict], None], cfg: TrainStageConfig, stage: str,
                 input_hashes: Mapping[str, str], networks: Mapping[str, Any],
                 fail_at_step: int | None = None) -> Any:
    """Run ``loop_fn`` on Ray Train, resuming the run of the same key, and export its final snapshot.

    Args:
        loop_fn: the stage's ``train_loop_per_worker``; it gets ``{"cfg": dict, "run_id": str,
            "fail_at_step": int | None}``.
        cfg: the stage's config dataclass.
        stage: the DVC stage name, e.g. ``"train_contrastive"``.
        input_hashes: name -> hash of every input (see ``shards_fingerprint``).
        networks: name -> the resolved config (plain dict) of every network the presets in ``cfg`` name; part of
            the run key and logged as ``networks.json``.
        fail_at_step: tests only: rank 1 (or 0 with one worker) kills itself after this update, once.
    Returns:
        Ray Train's ``Result`` (``result.checkpoint`` holds the final state and snapshot).
    """
    ensure_ray(cfg.ray)
    cfg = dataclasses.replace(cfg, tracking=resolve_tracking_config(cfg.tracking))  # workers run elsewhere
    config, key = to_dict(cfg), run_key(to_dict(cfg), input_hashes, networks)
    tags = {"thpad.train_key": key, **{f"thpad.input.{name}": value for name, value in input_hashes.items()}}
    run = open_stage_run(cfg.tracking, stage, params=config, tags=tags)
    run.log_dict(config, "config.json")
    run.log_dict(dict(networks), "networks.json")
    loop_config = {"cfg": config, "run_id": run.run_id, "fail_at_step": fail_at_step}
    trainer = make_trainer(loop_fn, loop_config, cfg, f"{stage}-{key}")
    log.info("Training %s in %s/%s-%s", stage, storage_root(cfg.work), stage, key)
    try:
        result = trainer.fit()
        export_snapshot(result.checkpoint, cfg.out, Storage(cfg.s3), run)
    except BaseException:
        run.close("FAILED")
        raise
    run.close("FINISHED")
    return result


def make_trainer(loop_fn: Callable[[dict], None], loop_config: dict[str, Any], cfg: TrainStageConfig,
                 name: str) -> Any:
    """A ``TorchTrainer`` whose run folder is ``storage_root(cfg.work)/name``, keeping the last 2 checkpoints."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    scaling = cfg.scaling
    return TorchTrainer(
        train_loop_per_worker=loop_fn,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=scaling.num_workers, use_gpu=scaling.use_gpu,
                                     resources_per_worker={"CPU": scaling.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=storage_root(cfg.work),
                             failure_config=FailureConfig(max_failures=cfg.schedule.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)),
    )


def export_snapshot(checkpoint: Any, out: str, storage: Storage, run: Any) -> None:
    """Copy the snapshot of the final checkpoint to the stage's out and log it as an MLflow artifact."""
    if checkpoint is None:
        raise RuntimeError("the training run reported no checkpoint, so there is no snapshot to export")
    with checkpoint.as_directory() as folder:
        source = Path(folder) / SNAPSHOT_FILE
        if not source.is_file():
            raise RuntimeError(f"the final checkpoint {checkpoint.path} holds no {SNAPSHOT_FILE}")
        storage.upload_file_atomic(source, out)
        run.log_artifact(str(source), "snapshot")


# Ranks, seeds and ticks: tiny pure functions.

@dataclasses.dataclass(frozen=True)
class Worker:
    """Where one Ray Train worker stands: its rank, the world, device, storage, per-rank batch and autocast."""

    rank: int
    world_size: int
    lead: bool  # rank 0: logs, validates, writes the training state
    device: torch.device
    storage: Storage
    batch_gpu: int  # rows per rank and accumulation round
    autocast: Any  # bf16 autocast on CUDA with mixed precision, else disabled


def init_worker(s: ScheduleParams, s3: S3Config) -> Worker:
    """The "initialise" step of every training loop (inside a Ray Train worker): read the context, and seed
    the initial weights identically on every rank."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(derive_seed(s.seed, 0, 0))  # the same initial weights on every rank
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=s.mixed_precision and device.type == "cuda")
    return Worker(rank, world_size, is_rank_zero(rank), device, Storage(s3),
                  per_rank_batch(s.batch_size, world_size, s.accum_rounds), autocast)


def is_rank_zero(rank: int) -> bool:
    """Rank 0 logs, validates and writes the shared state and the snapshot."""
    return rank == 0


def failing_rank(world_size: int) -> int:
    """The rank that injects the test failure: 1 when there is one, else 0."""
    return min(1, world_size - 1)


def kill_this_worker(reason: str, delay_s: float = KILL_DELAY_S) -> None:
    """Die as a worker lost with its node would (SIGKILL: no exception, no cleanup); tests only.

    Ray Train V2 registers a reported checkpoint only when its controller next polls the workers (every
    ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S``, 2 s by default); a worker killed sooner after a report loses
    that checkpoint with it. The delay lets the last report register, so the restart point is known.
    """
    log.warning("Killing this worker in %.1f s: %s", delay_s, reason)
    time.sleep(delay_s)
    os.kill(os.getpid(), signal.SIGKILL)


def derive_seed(seed: int, rank: int, epoch: int) -> int:
    """A 32-bit seed from (run seed, rank, epoch), independent across the three."""
    return int(np.random.SeedSequence([seed, rank, epoch]).generate_state(1)[0])


def crossed(prev_nsamples: int, cur_nsamples: int, every: int) -> bool:
    """True when progress went past a multiple of ``every`` samples in the last update."""
    return prev_nsamples // every != cur_nsamples // every


def learning_rate(cur_nsamples: int, s: ScheduleParams) -> float:
    """Linear warmup over ``warmup_samples``, then a half cosine to ``lr * min_lr_ratio`` over ``decay_samples``."""
    if cur_nsamples < s.warmup_samples:
        return s.lr * (cur_nsamples + s.batch_size) / (s.warmup_samples + s.batch_size)
    if s.decay_samples <= 0:
        return s.lr
    t = min((cur_nsamples - s.warmup_samples) / s.decay_samples, 1.0)
    return s.lr * (s.min_lr_ratio + (1.0 - s.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * t)))


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set every parameter group's learning rate."""
    for group in optimizer.param_groups:
        group["lr"] = lr


# Networks: EMA.

class Meter:
    """Running means of scalars between two log ticks."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> dict[str, float]:
        out = {key: total / self.counts[key] for key, total in self.sums.items()}
        self.sums, self.counts = {}, {}
        return out


def step_with_averaged_gradients(optimizer: torch.optim.Optimizer, world_size: int, grad_clip: float) -> float:
    """All-reduce (mean) the gradients of the optimizer's parameters that have one, clip, step, zero.

    StyleGAN3's data parallelism: one flat all-reduce per update, the only gradient averaging of thpad (every
    training stage and E_v's pretrainings). DDP's hooks fit neither stage 2's G step, whose backward runs through a
    frozen D, nor its phase two's frozen encoders; one mechanism everywhere keeps the stages' loops alike and a
    1-rank run the same code as an N-rank one. The cost: no overlap of the all-reduce with the backward pass, which
    matters only for large networks on many GPUs. Every rank runs the same code path, so the same parameters have
    gradients everywhere. Returns the global gradient norm before clipping.
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if world_size > 1 and params:
        flat = torch.cat([p.grad.flatten() for p in params])  # (P,)
        torch.distributed.all_reduce(flat)
        flat /= world_size
        for p, part in zip(params, flat.split([p.numel() for p in params]), strict=True):
            p.grad.copy_(part.view_as(p.grad))
    norm = nn.utils.clip_grad_norm_(params, grad_clip if grad_clip > 0 else float("inf")) if params else 0.0
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(norm)


def pretrain(parameters: list[nn.Parameter] | list[dict[str, Any]], loss_of: Callable[[dict[str, Any]], torch.Tensor],
             batches: Iterator[tuple[int, int, dict[str, Any]]], updates: int, lr: float, world_size: int,
             grad_clip: float, tracker: StageRun, key: str, betas: tuple[float, float] = (0.9, 0.999)) -> None:
    """A short supervised pretraining before a stage's own loop (E_v on landmark motion in stages 1 and 2,
    reconstruction without the GAN in stage 2): ``updates`` steps of Adam with ``betas`` (torch's default) at
    ``lr`` on ``loss_of(batch)``, gradients averaged over the ranks. ``parameters`` may be Adam's parameter groups,
    each with its own ``lr``. Draws from the stage's ``batches``, so the data position its checkpoints record
    includes them. Logs the loss's mean as ``key`` every 10 updates and at the last (``tracker``: rank 0's stage
    run)."""
    optimizer, meter = torch.optim.Adam(parameters, lr=lr, betas=betas), Meter()
    for update in range(1, updates + 1):
        loss = loss_of(next(batches)[2])
        loss.backward()
        step_with_averaged_gradients(optimizer, world_size, grad_clip)
        meter.add({key: loss.item()})
        if update % 10 == 0 or update == updates:
            tracker.log_metrics(meter.means(), update)


@torch.no_grad()
def ema_update(ema: nn.Module, net: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * net`` for parameters; buffers (BatchNorm stats) are copied."""
    for p_ema, p in zip(ema.parameters(), net.parameters(), strict=True):
        p_ema.lerp_(p.detach(), 1.0 - decay)
    for b_ema, b in zip(ema.buffers(), net.buffers(), strict=True):
        b_ema.copy_(b)


# Training state: what a checkpoint holds, and where.

def rank_file(rank: int) -> str:
    """Per-rank part of a checkpoint: RNG state and data position, e.g. ``rank-001.pt``."""
    return f"rank-{rank:03d}.pt"


def capture_rng() -> dict[str, Any]:
    """The torch RNG states of this process (CPU, and CUDA when present)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Restore what ``capture_rng`` returned."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def report_checkpoint(metrics: Mapping[str, float], rank: int, rank_state: Mapping[str, Any],
                      shared: Mapping[str, Any] | None = None,
                      snapshot: tuple[Mapping[str, Any], nn.Module] | None = None) -> None:
    """Write this rank's part of a checkpoint to a temporary folder and ``ray.train.report`` it.

    Every rank must call this at the same update (it is a collective); Ray merges the ranks' folders.
    Args:
        metrics: kept by Ray with the checkpoint (only rank 0's are used).
        rank_state: this rank's RNG state and data position.
        shared: rank 0's training state (model, EMA, optimizer, progress), else None.
        snapshot: (JSON config, EMA network) on rank 0 at the end, else None.
    """
    import ray.train

    with tempfile.TemporaryDirectory(prefix="thpad-ckpt-") as tmp:
        folder = Path(tmp)
        atomic_torch_save(dict(rank_state), folder / rank_file(rank))
        if shared is not None:
            atomic_torch_save(dict(shared), folder / STATE_FILE)
        if snapshot is not None:
            save_snapshot(folder / SNAPSHOT_FILE, snapshot[0], snapshot[1])
        ray.train.report(dict(metrics), checkpoint=ray.train.Checkpoint.from_directory(tmp))


def load_checkpoint(rank: int) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The shared training state and this rank's part of Ray's latest checkpoint, or (None, None).

    A rank missing from the checkpoint (the run was resumed with more workers) gets None for its part.
    """
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None, None
    with checkpoint.as_directory() as tmp:
        folder = Path(tmp)
        shared = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
        part = folder / rank_file(rank)
        rank_state = torch.load(part, map_location="cpu", weights_only=True) if os.path.exists(part) else None
    return shared, rank_state


@dataclasses.dataclass
class Progress:
    """Where training stands: updates, samples seen, and this rank's data position."""

    step: int = 0
    cur_nsamples: int = 0
    epoch: int = 0
    position: int = 0
    resumed: bool = False  # False on a fresh start (no checkpoint of this run yet)


def resume(rank: int, seed: int, stateful: Mapping[str, Any], position_key: str) -> Progress:
    """Load this run's last checkpoint, if any: each entry of ``stateful`` (checkpoint key -> object with
    ``load_state_dict``) from rank 0's training state, and this rank's RNG and data position (its part, key
    ``position_key``). Seeds this rank's own stream (``derive_seed(seed, rank, 1)``) before restoring it.
    Returns the restored progress (all zero, ``resumed`` False, on a fresh start)."""
    shared, own = load_checkpoint(rank)
    progress = Progress()
    if shared is not None:
        log.info("Resuming from step %d (%d samples)...", shared["step"], shared["cur_nsamples"])
        for key, target in stateful.items():
            if key in shared or key not in OPTIONAL_STATE:
                target.load_state_dict(shared[key])
        progress.step, progress.cur_nsamples, progress.resumed = shared["step"], shared["cur_nsamples"], True
    torch.manual_seed(derive_seed(seed, rank, 1))  # each rank's own stream from here on
    if own is not None:
        restore_rng(own["rng"])
        progress.epoch, progress.position = own["epoch"], own[position_key]
    return progress


class History:
    """The figures a run has logged, kept in rank 0's training state (``HISTORY_KEY``) so that a resumed run still
    holds its whole curves: rows of kind ``TRAIN`` (the loss terms of each log tick) and ``VAL`` (each validation),
    each ``{"step": int, "samples": int, name: float}`` with the names logged to MLflow (``train/loss``).

    A restart from a checkpoint restores the rows up to it, and the updates after it log their steps again, so no
    step is recorded twice; ``add`` also drops rows at or after the step it records (a finished run that is rerun
    validates its last step again)."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, float]]] = {TRAIN: [], VAL: []}

    def add(self, kind: str, step: int, cur_nsamples: int, values: Mapping[str, float]) -> None:
        """Record ``values`` (MLflow names) of kind ``TRAIN`` or ``VAL`` at ``step``; nothing when ``values`` is
        empty (the validation of ranks other than 0)."""
        if not values:
            return
        rows = self.rows[kind]
        while rows and rows[-1][STEP] >= step:
            rows.pop()
        rows.append({STEP: step, SAMPLES: cur_nsamples, **{name: float(v) for name, v in values.items()}})

    def state_dict(self) -> dict[str, list[dict[str, float]]]:
        """The rows by kind (plain lists and dicts: ``torch.load(..., weights_only=True)`` reads them)."""
        return {kind: [dict(row) for row in rows] for kind, rows in self.rows.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""
        self.rows = {kind: [dict(row) for row in state.get(kind, ())] for kind in (TRAIN, VAL)}


def read_history(checkpoint: Any) -> dict[str, list[dict[str, float]]]:
    """The ``History`` rows in rank 0's training state of a Ray Train checkpoint (the stage process reads the final
    one); empty rows for a state written before the history was kept. The state is memory-mapped: its tensors,
    which may be large, are never read."""
    with checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=True, mmap=True)
        history = History()
        history.load_state_dict(state.get(HISTORY_KEY, {}))
    return history.state_dict()


def export_dvc_outputs(result: Any, stage: str, metrics_root: str | Path, plots_root: str | Path,
                       rename: Rename | None = None) -> list[Path]:
    """Write a finished run's DVC metrics and plots (``storage.dvc_outputs.write_training_outputs``, which lists the
    keys) in the stage process: the figures reported with the final checkpoint (``result.metrics``) and the
    ``History`` in it. ``rename``: applied to the validation figures. Returns the written paths."""
    return write_training_outputs(stage, result.metrics or {}, read_history(result.checkpoint), metrics_root,
                                  plots_root, rename)


def gather_rows(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """All ranks' (b, D) rows concatenated in rank order, (world_size * b, D) (no gradient)."""
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts)  # (world_size * b, D)
