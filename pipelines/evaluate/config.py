"""Configuration of the evaluation suite (the ``evaluate`` section of params.yaml; docs/metrics.md).

Two tiers (``profile``): ``quick`` is what ``make run`` pays for (every guidance value in f_nl space, the frame-space
metrics at ``frame_guidance`` with ``frame_seeds`` seeds, identity on ``identity_frames`` frames per clip); ``full``
measures every metric at every guidance value with ``FULL_SEEDS`` seeds on every frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

FULL_SEEDS = 8  # MDM's protocol repeats sampling; the full tier's seeds for every metric


@dataclass(frozen=True)
class EvaluateConfig:
    """``evaluate``: what the suite samples, renders and measures.

    Attributes:
        profile: ``quick`` (``make run``) or ``full`` (see the module docstring).
        splits: the preprocessed splits evaluated (``test``: unseen portraits; ``val``: held-out clips).
        clips_per_split: clips taken from each split, in key order (0: all).
        guidance: the guidance scales s of Table I in f_nl space (the paper's Table I: 0, 1, 2.5, 5, 10).
        frame_guidance: the s values whose samples are rendered and measured (the quick tier's frame space).
        seeds: sampling seeds per s in f_nl space (mean and 95 % CI over them).
        frame_seeds: sampling seeds per s in frame space.
        identity_frames: frames per clip whose dlib face descriptor is compared with the photo's (0: all).
        measurer_min_r: the lowest r against the corpus's truth at which a measured factor is believed.
        expression_components: PCA components of the measured expression residual.
        pca_clips: train-split clips whose real frames fit the expression PCA.
        max_shift: lip-sync offsets searched, in frames either way.
        diversity_pairs: MDM's Diversity pairs, drawn across all sampled clips.
        multimodality_pairs: MDM's Multimodality pairs per audio clip.
        edit_frame: the frame pinned in the editing test (moved inside shorter clips).
        edit_window: frames either side of the pinned one whose speed is compared with unedited samples.
        ddpm_clips: clips sampled with DDPM-1000 and DDIM-25/50 for the sampler comparison (0: skipped).
        video_clips: clips in the report's side-by-side video (real, reconstruction, samples, AR).
        seed: the first sampling seed (seeds are consecutive).
    """

    profile: Literal["quick", "full"] = "quick"
    splits: tuple[str, ...] = ("test", "val")
    clips_per_split: int = 4
    guidance: tuple[float, ...] = (0.0, 1.0, 2.5, 5.0, 10.0)
    frame_guidance: tuple[float, ...] = (0.0, 2.5)
    seeds: int = 4
    frame_seeds: int = 2
    identity_frames: int = 4
    measurer_min_r: float = 0.6
    expression_components: int = 8
    pca_clips: int = 4
    max_shift: int = 6
    diversity_pairs: int = 200
    multimodality_pairs: int = 20
    edit_frame: int = 60
    edit_window: int = 5
    ddpm_clips: int = 2
    video_clips: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.profile not in ("quick", "full"):
            raise ValueError(f"evaluate.profile must be 'quick' or 'full', got {self.profile!r}")
        if not self.splits or self.clips_per_split < 0 or self.pca_clips < 1:
            raise ValueError("evaluate needs splits, clips_per_split >= 0 and pca_clips >= 1")
        if self.seeds < 1 or self.frame_seeds < 1 or not self.guidance or not self.frame_guidance:
            raise ValueError("evaluate needs seeds >= 1, frame_seeds >= 1 and at least one value in guidance and "
                             "in frame_guidance")
        if any(s < 0 for s in self.guidance + self.frame_guidance):
            raise ValueError("evaluate guidance values must be >= 0")
        if not 0.0 <= self.measurer_min_r <= 1.0 or self.expression_components < 1 or self.max_shift < 0:
            raise ValueError("evaluate.measurer_min_r must be in [0, 1], expression_components >= 1, max_shift >= 0")

    def tier(self) -> EvaluateConfig:
        """The settings the suite runs with: these for ``quick``; for ``full`` every guidance value in frame
        space, ``FULL_SEEDS`` seeds everywhere and the identity of every frame."""
        if self.profile == "quick":
            return self
        return dataclasses.replace(self, frame_guidance=self.guidance, seeds=max(self.seeds, FULL_SEEDS),
                                   frame_seeds=max(self.frame_seeds, FULL_SEEDS), identity_frames=0)
