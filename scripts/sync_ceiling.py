"""How well can audio→frame sync retrieval do on the sample corpus at all? An oracle for stage 1's validation.

The sample corpus renders speech on the face as one number per frame, the mouth opening (the corpus truth
``motion.mouth``). The oracle knows that number for every frame exactly and predicts it from the audio window
with a least-squares fit of three mel-energy features (fitted on the train split). It then retrieves, for each
val audio window, the frame of the same clip whose true opening is nearest to the prediction, exactly as
stage 1's ``val/sync_top1`` does with learned features (evenly spaced frames per clip), and also scores the
pairwise (two-alternative) form, ``val/sync_pairwise``.

Its figures bound what a learned model can reach from energy alone; a model may beat it only by reading more
from the mouth and the audio than the opening and its loudness. Usage (after ``make run`` built the shards):
``.venv/bin/python -m scripts.sync_ceiling [--shards data/preprocessed] [--frames 8 32]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import numpy as np

from scripts.corpus_clips import truth_clips
from thpad.storage.shards import MEL, load_npy
from thpad.storage.uri import Storage, StorageError
from thpad.storage.windows import mel_window

WINDOW_FRAMES = 5  # 0.2 s at 25 fps, as the shards' windows
BINS_PER_FRAME = 4


def clips(shards: str, split: str, storage: Storage) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(mel (n_mels, 4T), true mouth opening (T,)) of every clip of ``split``."""
    for meta, members in truth_clips(shards, split, storage):
        yield load_npy(members[MEL]).astype(np.float32), np.asarray(meta["truth"]["motion"]["mouth"], np.float64)


def energy_features(mel: np.ndarray, frame: int) -> np.ndarray:
    """Centre-frame mean and max, and window mean, of the log-mel window around ``frame``, plus a bias (4,)."""
    window = mel_window(mel, frame, WINDOW_FRAMES)[0]  # (n_mels, 20)
    mid = slice(2 * BINS_PER_FRAME, 3 * BINS_PER_FRAME)
    return np.array([window[:, mid].mean(), window[:, mid].max(), window.mean(), 1.0])


def fit_predictor(shards: str, storage: Storage) -> np.ndarray:
    """Least-squares weights (4,) from energy features to mouth opening on the train split."""
    x, y = [], []
    for mel, mouth in clips(shards, "train", storage):
        for t in range(2, len(mouth) - 2):
            x.append(energy_features(mel, t))
            y.append(mouth[t])
    return np.linalg.lstsq(np.array(x), np.array(y), rcond=None)[0]


def sync_scores(shards: str, storage: Storage, weights: np.ndarray, frames_per_clip: int) -> dict[str, float]:
    """Oracle top-1 among a clip's evenly spaced frames and pairwise accuracy, on the val split."""
    top1, pairwise = [], []
    for mel, mouth in clips(shards, "val", storage):
        frames = np.unique(np.linspace(2, len(mouth) - 3, frames_per_clip).round().astype(int))
        predicted = np.array([energy_features(mel, int(t)) @ weights for t in frames])  # (F,)
        for i, guess in enumerate(predicted):
            distance = np.abs(mouth[frames] - guess)  # (F,) smaller = more similar
            others = np.delete(distance, i)
            top1.append(float(np.argmin(distance) == i))
            pairwise.append(float(np.mean((others > distance[i]) + 0.5 * (others == distance[i]))))
    return {"top1": float(np.mean(top1)), "chance_top1": 1.0 / frames_per_clip,
            "pairwise": float(np.mean(pairwise)), "queries": float(len(top1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="data/preprocessed")
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 32], help="frames per val clip")
    args = parser.parse_args()
    storage = Storage()
    try:  # the val split is read after the train split: a missing one is a clear error too
        weights = fit_predictor(args.shards, storage)
        scores = {frames: sync_scores(args.shards, storage, weights, frames) for frames in args.frames}
    except (ValueError, StorageError) as err:
        raise SystemExit(f"error: {err}") from err
    for frames, s in scores.items():
        print(f"{frames} frames per clip ({s['queries']:.0f} queries): oracle sync top-1 {s['top1']:.3f} "
              f"(chance {s['chance_top1']:.3f}), pairwise {s['pairwise']:.3f} (chance 0.500)")


if __name__ == "__main__":
    main()
