"""Stage 2's data: the frame sampling of its training reader, one accumulation round's tensors, and the fixed
validation set (driving frames with same-clip identity frames and, on the sample corpus, the true motion).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from thpad.landmarks import MOUTH_INNER, MOUTH_OUTER
from thpad.models.generator.warp import pixel_to_grid
from thpad.models.talking_head import TALKING_HEAD_PRESETS
from thpad.pipelines.metrics.probe import probe_groups
from thpad.pipelines.train.disentangle.augment import augment_frames
from thpad.pipelines.train.disentangle.config import DisentangleConfig
from thpad.pipelines.train.disentangle.inputs import StageInputError
from thpad.pipelines.train.frames import MEL_BINS_PER_FRAME, FrameSamplingConfig
from thpad.storage.readers import iter_raw, to_tensor
from thpad.storage.shards import MEL, decode_frames, decode_meta, load_npy
from thpad.storage.uri import Storage
from thpad.storage.windows import mel_window


def frame_sampling(cfg: DisentangleConfig) -> FrameSamplingConfig:
    """The reader's settings, derived from the model preset (image size, window width) and the data params;
    the landmark-motion targets only when L_lmk is on."""
    preset, motion = TALKING_HEAD_PRESETS[cfg.model], cfg.loss.landmark_motion
    return FrameSamplingConfig(
        num_identity_frames=cfg.data.num_identity_frames, min_identity_distance=cfg.data.min_identity_distance,
        image_size=preset.visual.image_size, frames_per_window=preset.audio.n_frames // MEL_BINS_PER_FRAME,
        samples_per_clip=cfg.data.samples_per_clip, shuffle_buffer=cfg.data.shuffle_buffer, seed=cfg.schedule.seed,
        motion_points=motion.points if cfg.loss.weights.lmk > 0 else None, motion_min_std=motion.min_std,
        closure=motion.closure, closure_min_std=motion.closure_min_std)


class Round(NamedTuple):
    """One accumulation round's inputs, on the device."""

    real: torch.Tensor  # (b, 3, S, S) driving frames, G's target
    driving: torch.Tensor  # (b, 3, S, S) the same frames augmented, E_v's input
    identity: torch.Tensor  # (b, K, 3, S, S)
    mel: torch.Tensor  # (b, 1, n_mels, n_frames)
    landmark_motion: torch.Tensor | None  # (b, D) L_lmk's targets, None when L_lmk is off
    mouth_box: torch.Tensor  # (b, 4) x0, y0, x1, y1 of the driving frame's mouth, L_mouth's region
    landmarks: torch.Tensor  # (b, 68, 2) the driving frame's landmarks, in [-1, 1] grid coordinates
    photo_landmarks: torch.Tensor  # (b, 68, 2) the first identity frame's (the warp's photo), likewise


def mouth_boxes(landmarks: torch.Tensor, pad: float) -> torch.Tensor:
    """The box around each frame's lip points (iBUG 48-67), widened by ``pad`` times its size on every side:
    (b, 68, 2) landmarks in pixels -> (b, 4) x0, y0, x1, y1."""
    lips = landmarks[:, [*MOUTH_OUTER, *MOUTH_INNER]].float()  # (b, 20, 2)
    low, high = lips.amin(dim=1), lips.amax(dim=1)  # (b, 2) each
    margin = (high - low) * pad  # (b, 2)
    return torch.cat([low - margin, high + margin], dim=1)  # (b, 4)


def make_round(batch: Mapping[str, Any], cfg: DisentangleConfig, device: torch.device,
               augment: bool = True) -> Round:
    """Move a reader batch to the device, augmenting the driving frames (on the CPU, torch's RNG) unless
    ``augment`` is false (then ``driving`` is ``real``)."""
    real = batch["image"]  # (b, 3, S, S)
    motion = batch.get("landmark_motion")  # (b, D) or None
    driving = augment_frames(real, cfg.augment) if augment else real  # (b, 3, S, S)
    size = real.shape[-1]
    return Round(real.to(device), driving.to(device),
                 batch["identity_images"].to(device), batch["mel"][:, None].to(device),
                 None if motion is None else motion.to(device),
                 mouth_boxes(batch["landmarks"], cfg.loss.mouth_pad).to(device),
                 pixel_to_grid(batch["landmarks"], size).to(device),
                 pixel_to_grid(batch["identity_landmarks"][:, 0], size).to(device))


class ValSet(NamedTuple):
    """The fixed validation frames (rank 0)."""

    images: torch.Tensor  # (N, 3, S, S) driving frames
    mels: torch.Tensor  # (N, 1, n_mels, n_frames)
    groups: np.ndarray  # (N,) probe fold unit (clip, see probe_groups)
    truth: dict[str, np.ndarray] | None  # target -> (N,), None without truth
    recon_rows: np.ndarray  # (R,) rows of ``images`` with identity frames
    identity: torch.Tensor  # (R, K, 3, S, S)


def clip_truth(meta: Mapping[str, Any], key: str, frames: np.ndarray, targets: Sequence[str]) -> dict | None:
    """The corpus's true motion of ``targets`` at ``frames`` (None when the clip has no truth)."""
    motion = (meta.get("truth") or {}).get("motion")
    if motion is None:
        return None
    missing = [t for t in targets if t not in motion]
    if missing:
        raise StageInputError(f"val clip {key!r}: truth has no {missing} (known: {sorted(motion)}); "
                              "fix train_disentangle.validation.probe_targets")
    return {t: np.asarray(motion[t], np.float64)[frames] for t in targets}


def identity_partners(num_frames: int, frame: int, count: int, min_distance: int,
                      rng: np.random.Generator) -> np.ndarray:
    """``count`` frames at least ``min_distance`` from ``frame`` (distinct when enough exist), as in training."""
    frames = np.arange(num_frames)
    far = frames[np.abs(frames - frame) >= max(min_distance, 1)]
    if far.size == 0:
        raise StageInputError(f"a val clip of {num_frames} frames has no frame {min_distance} frames from {frame}")
    return rng.choice(far, count, replace=far.size < count)  # (count,)


def load_val_set(shards: Sequence[str], storage: Storage, cfg: DisentangleConfig,
                 sampling: FrameSamplingConfig) -> ValSet:
    """Evenly spaced frames of the first ``validation.clips`` val clips, with mel windows, truth and, for
    ``val.recon_frames_per_clip`` of them per clip, identity frames drawn as in training (seeded)."""
    v, half, k = cfg.validation, sampling.frames_per_window // 2, sampling.num_identity_frames
    rng = np.random.default_rng([cfg.schedule.seed, 2])
    images, mels, clips, frame_ids, truths, recon_rows, identity = [], [], [], [], [], [], []
    for index, (key, members) in enumerate(iter_raw(shards, storage)):
        if index >= v.clips:
            break
        meta, mel = decode_meta(key, members), load_npy(members[MEL])  # mel: (n_mels, 4T)
        num_frames = int(meta["num_frames"])
        frames = np.unique(np.linspace(half, num_frames - 1 - half, v.frames_per_clip).round().astype(int))
        picks = np.unique(np.linspace(0, len(frames) - 1, v.recon_frames_per_clip).round().astype(int))
        partners = [identity_partners(num_frames, int(t), k, sampling.min_identity_distance, rng)
                    for t in frames[picks]]  # R x (K,)
        decoded = to_tensor(decode_frames(members, [*frames.tolist(), *np.concatenate(partners).tolist()],
                                          sampling.image_size))  # (F + R*K, 3, S, S)
        recon_rows.append(picks + sum(len(x) for x in images))
        images.append(decoded[:len(frames)])
        identity.append(decoded[len(frames):].unflatten(0, (len(picks), k)))  # (R, K, 3, S, S)
        bins = mel.shape[1] // num_frames
        mels += [torch.from_numpy(mel_window(mel, int(t), sampling.frames_per_window, bins)[0]) for t in frames]
        clips.append(np.full(len(frames), index))
        frame_ids.append(frames)
        truths.append(clip_truth(meta, key, frames, v.probe_targets))
    if not images:
        raise StageInputError(f"the val shards {list(shards)} hold no clip")
    truth = None
    if all(t is not None for t in truths):
        truth = {name: np.concatenate([t[name] for t in truths]) for name in v.probe_targets}
    groups = probe_groups(np.concatenate(clips), np.concatenate(frame_ids), v.probe_folds)
    return ValSet(torch.cat(images), torch.stack(mels)[:, None], groups, truth, np.concatenate(recon_rows),
                  torch.cat(identity))
