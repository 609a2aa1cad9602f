"""L_lmk, our stand-in for the paper's pretrained E_v: f_nl predicts how the driving frame's face moves.

The paper's E_v is a MobileNetV2 pretrained as in LPD, so its f_nl carries head pose from the start. Without
those weights, E_v's backbone trains in stage 2 from reconstruction alone, and on a CPU budget the generator
learns too slowly to ask f_nl for anything (README, "Training"). L_lmk gives f_nl a direct signal: a
linear head on f_nl regresses the frame's rigid and non-rigid landmark motion relative to its clip
(``storage.landmark_motion``), from the brows, nose and eyes by default (the mouth and jaw move with speech,
which is f_l's job). Its weight is ``loss.weights.lmk``: 10 in the embedded default, with E_v pretrained on
it first, and 0 (off) in the paper profile (README, "Training"). The head trains with E_v in phase one and is
not part of the talking-head snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from storage.landmark_motion import landmark_motion_dim
from storage.shards import NUM_LANDMARKS


@dataclass(frozen=True)
class LandmarkMotionParams:
    """The landmark points the targets read (``points``: first and end; 17 and 48 = brows, nose and eyes; 48 and
    68 = the mouth), the floor under each target column's standard deviation over a clip (``min_std``, in
    stored-frame pixels for the non-rigid and shift columns, degrees for roll), and E_v's pretraining on these
    targets alone before the stage's own losses start (``pretrain_samples`` at Adam rate ``pretrain_lr``; 0
    samples: none), the counterpart of the paper's pretrained E_v. The pretraining runs on a fresh start only
    and is not on the stage's sample clock.
    """

    points: tuple[int, int]
    min_std: float
    pretrain_samples: int
    pretrain_lr: float

    def __post_init__(self) -> None:
        first, end = self.points
        if not 0 <= first < end - 1 < NUM_LANDMARKS or self.min_std <= 0:
            raise ValueError(f"landmark_motion needs 0 <= points[0] < points[1] - 1 < {NUM_LANDMARKS} and "
                             f"min_std > 0, got {self}")
        if self.pretrain_samples < 0 or self.pretrain_lr < 0:
            raise ValueError(f"landmark_motion needs pretrain_samples >= 0 and pretrain_lr >= 0, got {self}")

    @property
    def dim(self) -> int:
        """Width of the target (4 rigid columns + 2 per point)."""
        return landmark_motion_dim(*self.points)


def landmark_head(nl_dim: int, params: LandmarkMotionParams) -> nn.Linear:
    """The linear head from f_nl to the landmark motion (freshly initialised from the torch seed)."""
    return nn.Linear(nl_dim, params.dim)


def landmark_motion_loss(head: nn.Module, f_nl: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_lmk: mean squared error of the head's prediction from f_nl.

    Args:
        f_nl: (B, nl_dim) non-lip codes; target: (B, D) standardised landmark motion.
    Returns:
        scalar loss (about 1 for a prediction of 0, since the targets have unit variance per clip).
    """
    return F.mse_loss(head(f_nl), target)  # head(f_nl): (B, D)
