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


def sample_key(identity: str, video: str, utterance: str) -> str:
    """A WebDataset key for a clip: no dots or slashes (WebDataset splits keys at dots)."""
    raw = f"{identity}-{video}-{utterance}"
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in raw)


@dataclass(frozen=True)
class SourceClip:
    """A discovered input clip: its ids, where its video, audio and (sample corpus) truth live, and
    the group that must stay in one split (the identity, or the sample corpus's source portrait)."""

    identity: str
    video: str
    utterance: str
    official_split: str
    video_uri: str
    audio_uri: str | None
    truth_uri: str | None
    group: str

    @property
    def key(self) -> str:
        """The clip's shard key."""
        return sample_key(self.identity, self.video, self.utterance)
