"""Preprocesses one clip (docs/paper-notes.md §2.1, §2.2): decode, resample to 25 fps and 16 kHz, track the face,
align to 224×224 with one similarity per clip plus a smoothed translation from stable points, compute
the PC-AVS mel spectrogram, and map the landmarks (and a sample corpus's true landmarks) into the crop.

Bad input raises ``RejectClip`` with a human-readable reason; the caller records it.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from pathlib import Path

import av
import numpy as np

from thpad.pipelines.media import align, audio, resample
from thpad.pipelines.media.config import samples_per_frame
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.track import Landmarker, TrackStats, track_face
from thpad.pipelines.media.video import DecodedVideo, read_video
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.storage.shards import ClipSample
from thpad.storage.uri import Storage, is_s3
from thpad.storage.voxceleb import SourceClip


def _decode(path: Path) -> DecodedVideo:
    if path.stat().st_size == 0:
        raise RejectClip("empty file (0 bytes)")
    try:
        decoded = read_video(path)
    except IndexError as err:  # the container opened but holds no video stream
        raise RejectClip("no video stream") from err
    except (av.error.FFmpegError, ValueError) as err:
        raise RejectClip(f"cannot decode video: {err}") from err
    if decoded.frames.size == 0:
        raise RejectClip("no video frames")
    return decoded


def _audio_track(decoded: DecodedVideo, audio_path: Path | None, cfg: PreprocessConfig) -> np.ndarray:
    if audio_path is not None:
        try:
            return audio.load_pcm(audio_path, cfg.audio, cfg.policy.sample_rate_range)
        except av.error.FFmpegError as err:
            raise RejectClip(f"cannot decode audio file {audio_path.name}: {err}") from err
    if decoded.audio is None or decoded.sample_rate is None:
        raise RejectClip("no audio track (and no matching aac/.../N.m4a)")
    if len(decoded.audio) == 0:
        raise RejectClip("the audio track is empty")
    return audio.resample_pcm(decoded.audio, decoded.sample_rate, cfg.audio, cfg.policy.sample_rate_range)


def process_local(clip: SourceClip, video_path: Path, audio_path: Path | None, truth: dict | None,
                  cfg: PreprocessConfig, landmarker: Landmarker) -> ClipSample:
    """Preprocess a clip whose files are on local disk; raises ``RejectClip`` for bad input."""
    decoded = _decode(video_path)
    if len(decoded.frames) / max(decoded.fps, 1e-6) > cfg.policy.max_seconds:
        raise RejectClip(f"longer than {cfg.policy.max_seconds:g} s")
    index = resample.frame_indices(len(decoded.frames), decoded.fps, cfg.audio.fps)
    resample.check_fps(decoded.fps, cfg.policy.fps_range)
    frames = decoded.frames[index]  # (T, H, W, 3)
    if len(frames) < cfg.policy.min_frames:
        raise RejectClip(f"{len(frames)} frames at {cfg.audio.fps} fps, fewer than the minimum {cfg.policy.min_frames}")
    pcm = _audio_track(decoded, audio_path, cfg)
    if float(np.abs(pcm).max(initial=0.0)) < 1e-4:
        raise RejectClip("the audio is silent")
    pcm = resample.fit_audio_to_video(pcm, len(frames), samples_per_frame(cfg.audio),
                                      cfg.policy.length_tolerance_frames)
    track = track_face(frames, landmarker, cfg.track)
    xforms = align.align_transforms(track.landmarks, cfg.align)  # (T, 2, 3)
    crops = align.warp_frames(frames, xforms, cfg.align.size, cfg.align.border)  # (T, S, S, 3)
    mel = audio.mel_spectrogram(pcm, cfg.audio, len(frames)).astype(np.float16)  # (80, 4T)
    meta = _meta(clip, decoded, len(frames), track.stats, truth, index, xforms)
    return ClipSample(key=clip.key, frames=crops, lmk=align.transform_points(track.landmarks, xforms),
                      mel=mel, xform=xforms.astype(np.float32), audio=pcm.astype(np.float32), meta=meta,
                      sample_rate=cfg.audio.sample_rate)


def _meta(clip: SourceClip, decoded: DecodedVideo, num_frames: int, stats: TrackStats, truth: dict | None,
          index: np.ndarray, xforms: np.ndarray) -> dict:
    meta = {"identity": clip.identity, "video": clip.video, "utterance": clip.utterance,
            "group": clip.group, "fps": 25, "num_frames": num_frames, "source": clip.source or clip.video_uri,
            "source_fps": decoded.fps, "source_size": list(decoded.frames.shape[1:3]),
            "detection": dataclasses.asdict(stats)}
    if truth is not None:
        meta["truth"] = _truth_in_crop(truth, index, xforms)
    return meta


def _truth_in_crop(truth: dict, index: np.ndarray, xforms: np.ndarray) -> dict:
    """A sample corpus's truth at the kept frames, with landmarks and the head translation mapped into
    crop coordinates (``tx_crop``, ``ty_crop``: the source-pixel translation through each frame's
    linear part); angles, scale and expression channels need no mapping."""
    motion = {k: np.asarray(v, np.float64)[index] for k, v in truth["motion"].items()}
    if "tx" in motion and "ty" in motion:
        shift = np.stack([motion["tx"], motion["ty"]], axis=1)  # (T, 2) source pixels
        crop_shift = np.einsum("tij,tj->ti", xforms[:, :, :2].astype(np.float64), shift)  # (T, 2)
        motion["tx_crop"], motion["ty_crop"] = crop_shift[:, 0], crop_shift[:, 1]
    true_lmk = np.asarray(truth["landmarks"], np.float32)[index]  # (T, 68, 2) source pixels
    return {"motion": {k: v.round(4).tolist() for k, v in motion.items()},
            "events": truth.get("events", []),
            "landmarks": align.transform_points(true_lmk, xforms).round(2).tolist()}


def process_clip(clip: SourceClip, cfg: PreprocessConfig, storage: Storage, landmarker: Landmarker) -> ClipSample:
    """Fetch a clip's files (local or S3) and preprocess it; raises ``RejectClip`` for bad input."""
    truth = json.loads(storage.read_bytes(clip.truth_uri)) if clip.truth_uri else None
    with tempfile.TemporaryDirectory(prefix="thpad-clip-") as tmp:
        video_path = _local_copy(clip.video_uri, Path(tmp) / "video.mp4", storage)
        audio_path = _local_copy(clip.audio_uri, Path(tmp) / "audio.m4a", storage) if clip.audio_uri else None
        return process_local(clip, video_path, audio_path, truth, cfg, landmarker)


def _local_copy(uri: str, tmp: Path, storage: Storage) -> Path:
    if not is_s3(uri):
        return Path(uri)
    tmp.write_bytes(storage.read_bytes(uri))
    return tmp
