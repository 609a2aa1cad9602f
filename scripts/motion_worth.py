"""What is knowing a frame's motion worth to stage 2's reconstruction on the sample corpus? An oracle for stage 2.

Stage 2's generator gets an identity frame of the clip (at least ``--min-distance`` frames away) and the codes of
the target frame; its f_nl can only learn pose and blink if they visibly change the pixels. This oracle measures
that on the val split, per clip, at the stage's image size (L1 on [-1, 1] pixels, as ``val/recon_l1``):

- ``copy``: the target against its identity frame (what G starts from);
- ``mean``: the target against the clip's mean frame (the best guess that knows the clip but no motion);
- one row per set of true motion factors (``FACTOR_SETS``): pixels predicted by a per-clip least-squares fit,
  linear in those factors, fitted on the even frames and scored on the odd ones.

A learned G below ``mean`` renders more than the clip's identity; the gap between ``mean`` and ``pose`` is what a
non-lip code that tracks pose can buy. Usage (after ``make run`` built the shards):
``.venv/bin/python -m scripts.motion_worth [--shards data/preprocessed] [--size 56] [--min-distance 25] [--split val]``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import numpy as np

from scripts.corpus_clips import truth_clips
from thpad.storage.readers import to_tensor
from thpad.storage.shards import decode_frames
from thpad.storage.uri import Storage, StorageError

FACTOR_SETS: dict[str, tuple[str, ...]] = {
    "pose": ("yaw", "pitch", "roll"),
    "pose+blink": ("yaw", "pitch", "roll", "blink"),
    "mouth": ("mouth",),
    "all": ("yaw", "pitch", "roll", "blink", "mouth", "brow", "gaze_x", "gaze_y", "tx", "ty", "scale"),
}


def clips(shards: str, split: str, storage: Storage, size: int) -> Iterator[tuple[np.ndarray, dict[str, np.ndarray]]]:
    """(frames (T, 3*size*size) in [-1, 1], true motion series of length T) of every clip of ``split``."""
    for meta, members in truth_clips(shards, split, storage):
        n = int(meta["num_frames"])
        frames = to_tensor(decode_frames(members, list(range(n)), size)).numpy().reshape(n, -1)  # (T, 3*S*S)
        motion = {k: np.asarray(v, np.float64)[:n] for k, v in meta["truth"]["motion"].items()}
        yield frames, motion


def copy_l1(frames: np.ndarray, min_distance: int, rng: np.random.Generator) -> list[float]:
    """Per frame with a partner, the L1 against a random frame of the clip at least ``min_distance`` away."""
    t_all = np.arange(len(frames))
    out = []
    for t in t_all:
        far = t_all[np.abs(t_all - t) >= min_distance]
        if len(far):
            out.append(float(np.abs(frames[t] - frames[rng.choice(far)]).mean()))
    return out


def linear_l1(frames: np.ndarray, motion: dict[str, np.ndarray], factors: tuple[str, ...]) -> float:
    """L1 on the odd frames of pixels predicted linearly from ``factors`` (plus a bias) fitted on the even frames;
    no factors gives the even frames' mean."""
    n = len(frames)
    x = np.stack([np.ones(n), *(motion[f] for f in factors)], axis=1)  # (T, 1 + F)
    fit, score = slice(0, n, 2), slice(1, n, 2)
    weights = np.linalg.lstsq(x[fit], frames[fit], rcond=None)[0]  # (1 + F, 3*S*S)
    return float(np.abs(x[score] @ weights - frames[score]).mean())


def motion_worth(shards: str, storage: Storage, size: int, min_distance: int, seed: int = 0,
                 split: str = "val") -> dict[str, float]:
    """Mean over the clips of ``split`` of each row of the module docstring."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[float]] = {"copy": [], "mean": [], **{name: [] for name in FACTOR_SETS}}
    for frames, motion in clips(shards, split, storage, size):
        rows["copy"] += copy_l1(frames, min_distance, rng)
        rows["mean"].append(linear_l1(frames, motion, ()))
        for name, factors in FACTOR_SETS.items():
            rows[name].append(linear_l1(frames, motion, tuple(f for f in factors if f in motion)))
    return {name: float(np.mean(values)) if values else float("nan") for name, values in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", default="data/preprocessed")
    parser.add_argument("--size", type=int, default=56, help="image side in pixels (the tiny preset: 56)")
    parser.add_argument("--min-distance", type=int, default=25, help="identity frame distance (frames)")
    parser.add_argument("--split", default="val", help="the split whose clips are measured (test: unseen faces)")
    args = parser.parse_args()
    try:
        rows = motion_worth(args.shards, Storage(), args.size, args.min_distance, split=args.split)
    except (ValueError, StorageError) as err:
        raise SystemExit(f"error: {err}") from err
    for name, l1 in rows.items():
        print(f"{name:>11}: L1 {l1:.4f}")


if __name__ == "__main__":
    main()
