"""Compares two preprocessed folders clip by clip: which clips each accepted, and for the clips in both, how far
the landmarks, the crop transforms and the crops moved. Used to check that a faster preprocessing keeps the
shards' content within a stated tolerance of the code before it. Prints one JSON object.

Landmark differences are in crop pixels (the aligned 224 px frame), per frame, as the mean over the 68 points.

Usage: .venv/bin/python -m benchmarks.compare_shards BEFORE AFTER [--per-clip]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator

import numpy as np

from thpad.storage.manifest import SHARDS_DIR
from thpad.storage.readers import iter_clips
from thpad.storage.shards import ClipSample
from thpad.storage.uri import S3Config, Storage, join


def clips_of(folder: str, storage: Storage) -> dict[str, ClipSample]:
    """Every clip of a preprocessed folder's shards, by key."""
    return {s.key: s for s in _iter(folder, storage)}


def _iter(folder: str, storage: Storage) -> Iterator[ClipSample]:
    yield from iter_clips(storage.list_files(join(folder, SHARDS_DIR), ".tar"), storage)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 arrays (inf when equal)."""
    mse = float(((a.astype(np.float32) - b.astype(np.float32)) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def compare_clip(before: ClipSample, after: ClipSample) -> dict:
    """Per-clip differences; frame counts must match for the rest to be compared."""
    if before.num_frames != after.num_frames:
        return {"frames": [before.num_frames, after.num_frames]}
    per_frame = np.linalg.norm(before.lmk - after.lmk, axis=-1).mean(axis=1)  # (T,) crop px
    shift = np.abs(before.xform[:, :, 2] - after.xform[:, :, 2]).max()
    row = {"frames": before.num_frames, "lmk_mean_px": round(float(per_frame.mean()), 3),
           "lmk_p95_px": round(float(np.percentile(per_frame, 95)), 3), "lmk_max_px": round(float(per_frame.max()), 3),
           "xform_shift_max_px": round(float(shift), 3), "crop_psnr_db": round(psnr(before.frames, after.frames), 2),
           "detections": [before.meta["detection"]["detections"], after.meta["detection"]["detections"]]}
    if "truth" in before.meta and "truth" in after.meta:  # a sample corpus: how far each is from the true landmarks
        row["truth_err_px"] = [truth_error(before), truth_error(after)]
    return row


def truth_error(sample: ClipSample) -> float:
    """Mean distance in crop pixels of the shard's landmarks from the sample corpus's true ones (in the same crop)."""
    true = np.asarray(sample.meta["truth"]["landmarks"], np.float32)  # (T, 68, 2)
    return round(float(np.linalg.norm(sample.lmk - true, axis=-1).mean()), 3)


def compare(before: str, after: str, storage: Storage) -> dict:
    """Clips only in one folder, and the distribution of the differences over the clips in both."""
    a, b = clips_of(before, storage), clips_of(after, storage)
    common = sorted(set(a) & set(b))
    rows = {key: compare_clip(a[key], b[key]) for key in common}
    same = [r for r in rows.values() if "lmk_mean_px" in r]
    summary = {"clips_before": len(a), "clips_after": len(b), "only_before": sorted(set(a) - set(b)),
               "only_after": sorted(set(b) - set(a)), "frame_count_differs": [k for k, r in rows.items()
                                                                             if "lmk_mean_px" not in r]}
    if same:
        for name in ("lmk_mean_px", "lmk_p95_px", "lmk_max_px", "xform_shift_max_px", "crop_psnr_db"):
            values = np.array([r[name] for r in same])
            summary[name] = {"median": round(float(np.median(values)), 3), "mean": round(float(values.mean()), 3),
                             "min": round(float(values.min()), 3), "max": round(float(values.max()), 3)}
        summary["detections_per_clip"] = {"before": float(np.mean([r["detections"][0] for r in same])),
                                          "after": float(np.mean([r["detections"][1] for r in same]))}
        truth = np.array([r["truth_err_px"] for r in same if "truth_err_px" in r])  # (clips, 2)
        if len(truth):
            summary["truth_err_px"] = {name: {"mean": round(float(col.mean()), 3), "max": round(float(col.max()), 3)}
                                       for name, col in zip(("before", "after"), truth.T, strict=True)}
    return {"summary": summary, "clips": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="the preprocessed folder of the reference code")
    parser.add_argument("after", help="the preprocessed folder of the changed code")
    parser.add_argument("--per-clip", action="store_true", help="also print every clip's differences")
    args = parser.parse_args()
    result = compare(args.before, args.after, Storage(S3Config()))
    print(json.dumps(result if args.per_clip else result["summary"], indent=1))


if __name__ == "__main__":
    main()
