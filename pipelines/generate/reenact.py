"""Reenactment (TH-PAD supplement §I.5, Figs. III-IV): the non-lip codes come from a driving video instead of the
prior. The video is decoded at 25 fps, its face tracked and aligned exactly as preprocessing does, and E_v encodes
every frame. Self-reenactment when the photo is a frame of that video, cross-reenactment otherwise.

Length policy: a driving video longer than the speech is trimmed to it; a shorter one holds its last frame's code
to the end (both logged).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import av
import numpy as np
import torch

from thpad.models.generation import encode_nonlip
from thpad.pipelines.generate.inputs import InputError
from thpad.pipelines.generate.tensors import to_model_input
from thpad.pipelines.media import align, resample
from thpad.pipelines.media.errors import RejectClip
from thpad.pipelines.media.track import track_face
from thpad.pipelines.media.video import read_video

if TYPE_CHECKING:
    from thpad.pipelines.generate.model import TalkingHeadModel

log = logging.getLogger(__name__)


def fit_length(codes: np.ndarray, num_frames: int, name: str) -> np.ndarray:
    """Trim (T, N) codes to ``num_frames`` or hold the last one (see the module docstring)."""
    if len(codes) > num_frames:
        log.info("%s: %d frames, the speech %d: trimmed to the speech", name, len(codes), num_frames)
        return codes[:num_frames]
    if len(codes) < num_frames:
        log.info("%s: %d frames, the speech %d: its last frame is held", name, len(codes), num_frames)
        return np.concatenate([codes, np.repeat(codes[-1:], num_frames - len(codes), axis=0)])
    return codes


def driving_codes(model: TalkingHeadModel, video: Any, num_frames: int) -> np.ndarray:
    """E_v's non-lip code of every frame of a driving video, fitted to ``num_frames``: (num_frames, N) float32.

    Raises:
        InputError: the video cannot be read or holds no trackable face (the message names it).
    """
    name = str(video)
    try:
        decoded = read_video(video)
    except (av.error.FFmpegError, OSError, IndexError, ValueError) as err:
        raise InputError(f"cannot read the driving video {name} ({err}); use an mp4, mkv, webm or mov file") from err
    frames = decoded.frames[resample.frame_indices(len(decoded.frames), decoded.fps, model.fps)]  # (T, H, W, 3)
    try:
        track = track_face(frames, model.landmarker, model.track_cfg)
    except RejectClip as err:
        raise InputError(f"driving video {name}: {err}; use a video with one clearly visible face") from err
    xforms = align.align_transforms(track.landmarks, model.align_cfg)  # (T, 2, 3)
    crops = align.warp_frames(frames, xforms, model.align_cfg.size, model.align_cfg.border)  # (T, S0, S0, 3)
    batch = torch.stack([to_model_input(c, model.image_size) for c in crops]).to(model.device)  # (T, 3, S, S)
    return fit_length(encode_nonlip(model.head, batch), num_frames, name)
