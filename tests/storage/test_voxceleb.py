"""Discovery in VoxCeleb2's layout records each clip's video relative to the corpus root, so the shards and the
manifest of one corpus are the same bytes wherever the corpus or the checkout lies."""

from __future__ import annotations

from pathlib import Path

from thpad.storage.uri import Storage
from thpad.storage.voxceleb import discover


def _corpus(root: Path) -> None:
    for rel in ("dev/mp4/id00001/vidA/00001.mp4", "mp4/id00002/vidB/00002.mp4", "stray.mp4"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def test_sources_are_relative_to_the_root_and_the_same_anywhere(tmp_path: Path) -> None:
    found = {}
    for where in ("one", "deeper/two"):
        _corpus(tmp_path / where)
        found[where] = discover(str(tmp_path / where), Storage())
    assert sorted(c.source for c in found["one"].clips) == ["dev/mp4/id00001/vidA/00001.mp4",
                                                            "mp4/id00002/vidB/00002.mp4"]
    assert [c.source for c in found["one"].clips] == [c.source for c in found["deeper/two"].clips]
    assert all(c.video_uri.startswith(str(tmp_path / "one")) for c in found["one"].clips)  # reading needs the URI
    assert [reason for _, reason in found["one"].rejects] == ["not in the VoxCeleb2 layout "
                                                              "{dev,test}/mp4/idX/VIDEO/N.mp4"]
