"""The VoxCeleb2 folder layout: ``ROOT/{dev,test}/mp4/idXXXXX/VIDEO/NNNNN.mp4`` (docs/paper-notes.md §7).

The sample corpus writes this layout, with a ``.json`` of true motion beside each clip, and
preprocessing discovers it. Identity, video and utterance are kept as fields, never re-parsed
from joined strings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath

from thpad.storage.uri import Storage, join

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
    source: str = ""  # the video's path relative to the corpus root: what shards and the manifest record

    @property
    def key(self) -> str:
        """The clip's shard key."""
        return sample_key(self.identity, self.video, self.utterance)


@dataclass(frozen=True)
class Discovery:
    """What was found below a corpus root: usable clips and inputs refused with a reason."""

    clips: tuple[SourceClip, ...]
    rejects: tuple[tuple[str, str], ...]  # (source URI, reason)


def discover(root: str, storage: Storage) -> Discovery:
    """Find every ``.mp4`` below ``root`` in VoxCeleb2's layout (``ROOT/{dev,test}/mp4/idX/VIDEO/N.mp4``
    or ``ROOT/mp4/...``, the latter counted as dev), with its audio from the matching
    ``aac/.../N.m4a`` when present (else the mp4's own track) and a sample-corpus truth ``.json``.

    Groups: the sample corpus's ``corpus.json`` maps identities to source portraits; elsewhere the
    group is the identity. Files outside the layout are refused, never dropped silently.
    """
    files = storage.list_files(root)
    present = set(files)
    portraits = _portrait_groups(root, storage, present)
    clips, rejects = [], []
    for uri in files:
        if not uri.endswith(".mp4"):
            continue
        parts = _relative(root, uri).split("/")
        if len(parts) == 4 and parts[0] == "mp4":
            parts = ["dev", *parts]
        if len(parts) != 5 or parts[0] not in SPLITS or parts[1] != "mp4":
            rejects.append((uri, "not in the VoxCeleb2 layout {dev,test}/mp4/idX/VIDEO/N.mp4"))
            continue
        split, _, identity, video, name = parts
        audio = join(root, split, "aac", identity, video, name[:-4] + ".m4a")
        truth = uri[:-4] + ".json"
        clips.append(SourceClip(identity, video, name[:-4], split, uri, audio if audio in present else None,
                                truth if truth in present else None, portraits.get(identity, identity),
                                _relative(root, uri)))
    return Discovery(tuple(clips), tuple(rejects))


def _relative(root: str, uri: str) -> str:
    base = str(root).rstrip("/") + "/"
    return uri[len(base):] if uri.startswith(base) else uri


def _portrait_groups(root: str, storage: Storage, present: set[str]) -> dict[str, str]:
    """identity -> "portrait:NAME" from a sample corpus's ``corpus.json`` (empty for VoxCeleb2)."""
    index = join(root, "corpus.json")
    if index not in present:
        return {}
    data = json.loads(storage.read_bytes(index))
    return {i["identity"]: f"portrait:{i['portrait']}" for i in data.get("identities", [])}
