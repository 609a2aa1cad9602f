"""The VoxCeleb2 folder layout: ``ROOT/{dev,test}/mp4/idXXXXX/VIDEO/NNNNN.mp4`` (paper_spec §7).

The sample corpus writes this layout, with a ``.json`` of true motion beside each clip, and
preprocessing discovers it. Identity, video and utterance are kept as fields, never re-parsed
from joined strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

SPLITS = ("dev", "test")


@dataclass(frozen=True)
class ClipId:
    """One utterance: VoxCeleb2 split folder, identity (``id00012``), video id and utterance number."""

    split: str
    identity: str
    video: str
    utterance: str

    def relpath(self, suffix: str = ".mp4", kind: str = "mp4") -> PurePosixPath:
        """The clip's path below the corpus root, e.g. ``dev/mp4/id00012/21Uxsk56VDQ/00001.mp4``."""
        if self.split not in SPLITS:
            raise ValueError(f"split {self.split!r} is not one of {SPLITS}")
        return PurePosixPath(self.split, kind, self.identity, self.video, self.utterance + suffix)
