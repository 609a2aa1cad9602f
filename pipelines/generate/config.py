"""Configuration of generation (the ``generate`` section of params.yaml): the defaults of ``thpad generate`` and of
the ``demo`` stage. The sampling defaults (prior, sampler, steps, guidance, rescale) are not here: they travel in
the bundle, validated with the prior, so that a consumer without ``params.yaml`` gets the same ones."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GenerateConfig:
    """Defaults of ``thpad generate``.

    Attributes:
        motion_scale: scale of the sampled non-lip motion about the photo's own pose (1 = as sampled).
        paste_back_motion_scale: the same when pasting back into the photo (ours: sampled yaw and pitch turn the face
            against the photo's own neck and hair, which the paste-back mask cannot hide; 0.5 halves that).
        crf: x264 quality of the written videos (lower is better; 18 is visually lossless).
        max_seconds: longest speech accepted, in seconds (longer audio streams fine; this bounds a mistake).
    """

    motion_scale: float = 1.0
    paste_back_motion_scale: float = 0.5
    crf: int = 18
    max_seconds: float = 600.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.motion_scale <= 4.0 or not 0.0 <= self.paste_back_motion_scale <= 4.0:
            raise ValueError("generate.motion_scale and paste_back_motion_scale must be in [0, 4]")
        if not 0 <= self.crf <= 51 or self.max_seconds <= 0:
            raise ValueError(f"generate.crf must be in [0, 51] and max_seconds > 0, got {self.crf}, {self.max_seconds}")


@dataclass(frozen=True)
class DemoConfig:
    """``demo``: the demo videos' settings.

    Attributes:
        samples: videos of the diffusion prior from consecutive seeds, shown side by side.
        seed: the first seed.
        keyframe_frame: the frame pinned in ``keyframe.mp4``.
        strip_frames: frames of sample 0 in ``strip.png``.
    """

    samples: int = 3
    seed: int = 0
    keyframe_frame: int = 60
    strip_frames: int = 8

    def __post_init__(self) -> None:
        if self.samples < 1 or self.keyframe_frame < 0 or self.strip_frames < 1:
            raise ValueError("demo needs samples >= 1, keyframe_frame >= 0 and strip_frames >= 1")
