"""The exception a per-clip media step raises to turn a clip away (preprocessing, docs/paper-notes.md §2.2, §7).

A rejected clip is not a bug: the orchestrator catches ``RejectClip``, records its ``reason`` beside
the clip's key and carries on with the next clip.
"""

from __future__ import annotations


class RejectClip(Exception):  # noqa: N818 (the name the preprocessing issue uses)
    """A clip that preprocessing will not use, with a human-readable reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
