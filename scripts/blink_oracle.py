"""Can stage 2's E_v learn a motion factor at all? An oracle for the f_nl probe on the sample corpus.

Stage 2 asks f_nl to track the corpus's true pose and blink, but E_v never sees the truth: it learns from L_lmk's
landmark targets and the GAN. This oracle gives E_v the truth itself. From stage 1's weights (as stage 2 starts),
E_v's phase-one parts and a linear head on f_nl regress one true factor (``--target``, standardised per clip)
under Adam, on stage 2's reader and batches, with the driving frames augmented as stage 2 augments them or not
(``--clean``). It prints the correlation of the head's output with the truth over the last 300 training batches
(can E_v fit it at all) and stage 2's val probe of f_nl (does it carry over to unseen clips). One process, one
thread, nothing written. No real data has such truth: this measures the encoder, not the pipeline.

Usage (after ``make run``): ``.venv/bin/python -m scripts.blink_oracle [--params params.yaml] [--target blink]
[--updates 2500] [--clean] [--seed 0]``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from torch import nn

from scripts.corpus_clips import truth_clips
from thpad.pipelines.metrics.probe import pearson
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.disentangle.data import frame_sampling, load_val_set, make_round
from thpad.pipelines.train.disentangle.inputs import read_contrastive
from thpad.pipelines.train.disentangle.networks import build_networks, encoder_parts
from thpad.pipelines.train.disentangle.validate import validate
from thpad.pipelines.train.frames import FrameDataset, endless_batches
from thpad.pipelines.train.harness import pretrain
from thpad.stages.params import load_params
from thpad.storage.manifest import identity_indices, list_shards, manifest_uri, read_manifest
from thpad.storage.tracking import NullRun
from thpad.storage.uri import Storage
from thpad.storage.voxceleb import sample_key

FIT_BATCHES = 300  # the training fit is scored on this many last batches
MIN_STD = 0.05  # floor under a clip's std when standardising the target


def clip_targets(shards: str, target: str, storage: Storage) -> dict[str, torch.Tensor]:
    """Clip key -> (T,) the true ``target`` of the train split, centred and scaled per clip."""
    out = {}
    for meta, _ in truth_clips(shards, "train", storage):
        motion = meta["truth"].get("motion", {})
        if target not in motion:
            raise ValueError(f"--target {target!r} is not in the corpus truth (known: {sorted(motion)})")
        series = np.asarray(motion[target], np.float32)  # (T,)
        key = sample_key(meta["identity"], meta["video"], meta["utterance"])
        out[key] = torch.from_numpy((series - series.mean()) / (series.std() + MIN_STD))
    return out


def train(cfg: DisentangleConfig, targets: dict[str, torch.Tensor], updates: int, clean: bool,
          storage: Storage) -> tuple[nn.Module, float]:
    """E_v (from stage 1) regressing the true target with stage 2's pretraining loop (``harness.pretrain``);
    returns the talking head and the training fit r."""
    head, _, _ = build_networks(cfg, read_contrastive(cfg.contrastive, storage, cfg.model))
    probe = nn.Linear(head.cfg.nl_dim, 1)
    parts = [*encoder_parts(head, cfg, None), probe]
    for module in parts:
        module.train().requires_grad_(True)
    identities = identity_indices(read_manifest(manifest_uri(cfg.shards), storage))
    dataset = FrameDataset(list_shards(cfg.shards, "train", storage), storage, frame_sampling(cfg), identities)
    fit: list[tuple[torch.Tensor, torch.Tensor]] = []

    def loss_of(batch: dict[str, Any]) -> torch.Tensor:
        r = make_round(batch, cfg, torch.device("cpu"))
        truth = torch.stack([targets[k][int(t)] for k, t in zip(batch["key"], batch["frame"], strict=True)])  # (B,)
        pred = probe(head.visual_encoder(r.real if clean else r.driving).f_nl)[:, 0]  # (B,)
        fit.append((pred.detach(), truth))
        del fit[:-FIT_BATCHES]
        return (pred - truth).pow(2).mean()

    pretrain([q for module in parts for q in module.parameters()], loss_of,
             endless_batches(dataset, cfg.schedule.batch_size, 0, 0, 0), updates,
             cfg.loss.landmark_motion.pretrain_lr, 1, cfg.schedule.grad_clip, NullRun(), "oracle")
    pred, truth = (torch.cat(x).numpy() for x in zip(*fit, strict=True))
    return head, pearson(pred.astype(np.float64), truth.astype(np.float64))


def val_probe(head: nn.Module, cfg: DisentangleConfig, storage: Storage) -> dict[str, float]:
    """Stage 2's probe of f_nl on the val clips (target -> r), from stage 2's own ``validate``."""
    val = load_val_set(list_shards(cfg.shards, "val", storage), storage, cfg, frame_sampling(cfg))
    metrics, _ = validate(head.eval(), val, cfg)
    prefix = "val/probe_nl/"
    return {name[len(prefix):]: round(r, 3) for name, r in metrics.items() if name.startswith(prefix)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (train_disentangle's settings)")
    parser.add_argument("--target", default="blink", help="the true factor E_v regresses (corpus truth name)")
    parser.add_argument("--updates", type=int, default=2500, help="Adam updates of train_disentangle's batch size")
    parser.add_argument("--clean", action="store_true", help="no LPD augmentation of the driving frames")
    parser.add_argument("--seed", type=int, default=0, help="torch seed (network init and augmentation)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg, storage = load_params(args.params).train_disentangle, Storage()
    try:
        targets = clip_targets(cfg.shards, args.target, storage)
    except ValueError as err:
        raise SystemExit(f"blink_oracle: {err}") from None
    head, fit = train(cfg, targets, args.updates, args.clean, storage)
    print(f"{args.target}, {args.updates} updates, {'clean' if args.clean else 'augmented'} frames: "
          f"training fit r {fit:.3f}; val probe of f_nl {val_probe(head, cfg, storage)}")


if __name__ == "__main__":
    main()
