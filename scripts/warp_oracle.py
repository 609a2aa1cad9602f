"""How fast can the tiny warping renderer learn the sample corpus? Two in-process bounds for stage 2's renderer.

- ``--code truth``: the renderer alone, with both frames' true motion (every factor of the corpus's truth,
  standardised over the train frames) as its motion code: what it reaches with a perfect code.
- ``--code ev``: E_v (from a stage-1 snapshot), E_id and the renderer trained together, the code being E_v's f_nl
  of the photo and of the target (no lip code), as in the stage but on clean frames, without the GAN, L_lmk or
  pretraining, E_v at half the learning rate; the f_nl probe r of yaw, pitch and roll is printed with the L1.

Both train on L_pix alone (``--scales`` levels) with batch ``--batch``, the stage's gradient clip and an identity
frame at least 25 frames from the target as in the stage, and print the L1 on fixed random val pairs every
``--every`` updates. Usage (after ``make run``): ``.venv/bin/python -m scripts.warp_oracle --code truth``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from scripts.motion_worth import clips
from thpad.models.generator.warp import WARP_PRESETS, WarpRenderer
from thpad.models.losses import pyramid_l1
from thpad.models.talking_head import TALKING_HEAD_PRESETS, TalkingHead
from thpad.pipelines.metrics.probe import pearson, probe_predictions
from thpad.pipelines.train.disentangle.inputs import read_contrastive
from thpad.storage.uri import Storage, StorageError

FACTORS = ("yaw", "pitch", "roll", "blink", "mouth", "brow", "gaze_x", "gaze_y", "tx", "ty", "scale")
POSE = ("yaw", "pitch", "roll")
SIZE = 56
MIN_DISTANCE = 25
Clip = tuple[torch.Tensor, np.ndarray]  # frames (T, 3, S, S) in [-1, 1], truth (T, F)


def load_split(shards: str, split: str) -> list[Clip]:
    """Every clip of ``split`` with its truth columns ``FACTORS`` (the sample corpus has them all)."""
    out = []
    for frames, motion in clips(shards, split, Storage(), SIZE):
        missing = [k for k in FACTORS if k not in motion]
        if missing:
            raise ValueError(f"{shards}: a {split} clip has no true {missing[0]!r} (the oracle needs the sample "
                             "corpus)")
        truth = np.stack([motion[k] for k in FACTORS], axis=1).astype(np.float32)  # (T, F)
        out.append((torch.from_numpy(frames.reshape(-1, 3, SIZE, SIZE)).float(), truth))
    return out


def draw_pairs(data: list[Clip], n: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """``n`` (photo, target) pairs of random clips, at least ``MIN_DISTANCE`` frames apart, with their truth rows:
    photos and targets (n, 3, S, S), truths (n, F) each."""
    rows: list[tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray]] = []
    while len(rows) < n:
        frames, truth = data[rng.integers(len(data))]
        t = int(rng.integers(len(frames)))
        far = np.flatnonzero(np.abs(np.arange(len(frames)) - t) >= MIN_DISTANCE)
        if len(far):
            s = int(rng.choice(far))
            rows.append((frames[s], frames[t], truth[s], truth[t]))
    photos, targets, t_src, t_tgt = zip(*rows, strict=True)
    return (torch.stack(photos), torch.stack(targets), torch.from_numpy(np.stack(t_src)),
            torch.from_numpy(np.stack(t_tgt)))


class TruthRenderer(torch.nn.Module):
    """The tiny warp with cat(standardised truth of the photo, of the target) as its motion code."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.warp = WarpRenderer(WARP_PRESETS["tiny"], 2 * len(mean))
        self.register_buffer("id_map", torch.zeros(1, WARP_PRESETS["tiny"].map_channels, 7, 7))

    def forward(self, photo: torch.Tensor, target: torch.Tensor, t_src: torch.Tensor, t_tgt: torch.Tensor,
                noise: str = "random") -> torch.Tensor:
        code = torch.cat([(t_src - self.mean) / self.std, (t_tgt - self.mean) / self.std], dim=1)  # (B, 2F)
        return self.warp(photo, self.id_map.expand(len(photo), -1, -1, -1), code, noise)  # (B, 3, S, S)


class EncodedRenderer(torch.nn.Module):
    """E_v, E_id and the tiny warp of a ``TalkingHead``, the lip code zero."""

    def __init__(self, contrastive: str) -> None:
        super().__init__()
        self.head = TalkingHead(dataclasses.replace(TALKING_HEAD_PRESETS["tiny"], renderer="warp"))
        stage_one = read_contrastive(contrastive, Storage(), "tiny")
        self.head.visual_encoder.load_state_dict(stage_one.visual_encoder.state_dict())

    def forward(self, photo: torch.Tensor, target: torch.Tensor, t_src: torch.Tensor, t_tgt: torch.Tensor,
                noise: str = "random") -> torch.Tensor:
        f_id, id_map = self.head.encode_identity(photo)  # (B, id_dim), (B, C, 7, 7)
        f_nl = self.head.visual_encoder(target).f_nl  # (B, 42)
        lip = torch.zeros(len(photo), self.head.cfg.lip_dim)
        return self.head.synthesize(photo, f_id, id_map, f_nl, lip, noise)  # (B, 3, S, S)

    @torch.no_grad()
    def probe(self, val: list[Clip]) -> list[float]:
        """Per-clip-centred probe r of f_nl for each of ``POSE`` on 60 frames of every val clip."""
        feats, truths, groups = [], [], []
        for i, (frames, truth) in enumerate(val):
            idx = np.linspace(0, len(frames) - 1, 60).astype(int)
            feats.append(self.head.visual_encoder(frames[idx]).f_nl.double().numpy())
            truths.append(truth[idx])
            groups.append(np.full(len(idx), i))
        truth = np.concatenate(truths)
        cols = {k: truth[:, FACTORS.index(k)] for k in POSE}
        pred, true = probe_predictions(np.concatenate(feats), cols, np.concatenate(groups), 2, 0.1,
                                       within_groups=True)
        return [pearson(pred[:, j], true[:, j]) for j in range(len(POSE))]


def run(args: argparse.Namespace) -> None:
    """Train and report (see the module docstring)."""
    torch.manual_seed(args.seed)
    train, val = load_split(args.shards, "train"), load_split(args.shards, "val")
    if args.code == "truth":
        truth = torch.from_numpy(np.concatenate([t for _, t in train]))  # (N, F)
        net: TruthRenderer | EncodedRenderer = TruthRenderer(truth.mean(0), truth.std(0) + 1e-6)
    else:
        net = EncodedRenderer(args.contrastive)
    groups = [{"params": list(net.parameters())}]
    if isinstance(net, EncodedRenderer):  # E_v at half the rate, as the stage's lr_scale.visual
        visual = set(net.head.visual_encoder.parameters())
        groups = [{"params": [p for p in net.parameters() if p not in visual]},
                  {"params": list(visual), "lr": args.lr / 2}]
    opt = torch.optim.Adam(groups, args.lr, betas=(0.5, 0.999))
    rng = np.random.default_rng(args.seed)
    val_pairs = [draw_pairs(val, 64, np.random.default_rng(args.seed + 1000 + i)) for i in range(4)]
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        photo, target, t_src, t_tgt = draw_pairs(train, args.batch, rng)
        loss = pyramid_l1(target, net(photo, target, t_src, t_tgt), args.scales)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.grad_clip)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            net.eval()
            with torch.no_grad():
                l1 = float(np.mean([float((net(*pair, noise="none") - pair[1]).abs().mean()) for pair in val_pairs]))
            extra = "" if args.code == "truth" else "  probe yaw/pitch/roll " + " / ".join(
                f"{r:.2f}" for r in net.probe(val))
            net.train()
            print(f"{step:>6} updates  val L1 {l1:.4f}{extra}  ({time.perf_counter() - start:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", choices=("truth", "ev"), default="truth", help="the renderer's motion code")
    parser.add_argument("--shards", default="data/preprocessed")
    parser.add_argument("--contrastive", default="data/models/contrastive.pt", help="stage 1's snapshot (--code ev)")
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--every", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--scales", type=int, default=3, help="L_pix's pyramid levels")
    parser.add_argument("--grad-clip", type=float, default=10.0, help="gradient norm clip (the stage's: 10)")
    parser.add_argument("--seed", type=int, default=0)
    try:
        run(parser.parse_args())
    except (ValueError, StorageError) as err:
        raise SystemExit(f"error: {err}") from err


if __name__ == "__main__":
    main()
