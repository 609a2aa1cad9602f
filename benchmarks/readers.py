"""Benchmark of the training reader (``storage.readers.FrameDataset``, stages 1 and 2): items per second over
several epochs, read (a) the way the stages read, one dataset for the whole run, so each clip's meta is parsed
on its first read only, and (b) with a fresh dataset every epoch, which parses every clip's meta again as the
reader did before 2026-11-25 (the baseline). Stage 2's settings from the params (L_lmk's targets included when
its weight is on); one process, one thread. Prints one JSON object.

Usage: .venv/bin/python -m benchmarks.readers [--params params.yaml] [--epochs 4]
(run as a module: run as a script, this folder would shadow top-level packages)
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch

from thpad.pipelines.train.disentangle.data import frame_sampling
from thpad.pipelines.train.frames import FrameDataset
from thpad.stages.params import load_params
from thpad.storage.manifest import identity_indices, list_shards, manifest_uri, read_manifest
from thpad.storage.uri import Storage


def items_per_second(make: Callable[[], FrameDataset], epochs: int, fresh: bool) -> dict[str, float]:
    """Items/s of the first epoch and of the later ones, with one dataset or a new one per epoch."""
    dataset, seconds, counts = make(), [], []
    for epoch in range(epochs):
        if fresh:
            dataset = make()
        dataset.set_epoch(epoch)
        start = time.perf_counter()
        counts.append(sum(1 for _ in dataset))
        seconds.append(time.perf_counter() - start)
    return {"first_epoch": counts[0] / seconds[0], "later_epochs": sum(counts[1:]) / sum(seconds[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", default="params.yaml", help="params file (stage 2's data settings)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement (at least 2)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = load_params(args.params).train_disentangle
    storage = Storage()
    shards = list_shards(cfg.shards, "train", storage)
    identities = identity_indices(read_manifest(manifest_uri(cfg.shards), storage))
    sampling, epochs = frame_sampling(cfg), max(args.epochs, 2)

    def make() -> FrameDataset:
        return FrameDataset(shards, storage, sampling, identities)

    one = items_per_second(make, epochs, fresh=False)
    fresh = items_per_second(make, epochs, fresh=True)
    print(json.dumps({"shards": len(shards), "epochs": epochs, "landmark_motion": sampling.motion_points is not None,
                      "one_dataset_items_per_s": one, "fresh_dataset_per_epoch_items_per_s (baseline)": fresh,
                      "later_epochs_ratio": one["later_epochs"] / fresh["later_epochs"]}, indent=2))


if __name__ == "__main__":
    main()
