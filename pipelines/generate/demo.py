"""Stage ``demo``: what ``make run`` ends with, made from inputs the training never saw.

From the test split (whole portraits held out of training): the photo is the first frame of one test clip and the
speech the sound of another test clip. ``data/demo/`` then holds:

- ``samples.mp4``: K samples of the diffusion prior side by side (``samples-seedS.mp4`` each on its own);
- ``keyframe.mp4``: sample 0 with one frame pinned to E_v of a third test clip's frame (mask editing, supplement
  §II.3);
- ``reenacted.mp4``: the non-lip motion of a fourth test clip's video instead of the prior (supplement §I.5);
- ``strip.png``: the photo and 8 frames of sample 0; the inputs (``photo.png``, ``speech.wav``, ``keyframe.png``);
- ``index.json``: what each file is and where its inputs came from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile
from PIL import Image

from thpad.pipelines.generate.config import DemoConfig
from thpad.pipelines.generate.model import TalkingHeadModel
from thpad.pipelines.generate.strip import frame_strip
from thpad.storage.bundle import atomic_dir
from thpad.storage.files import atomic_write_json
from thpad.storage.manifest import manifest_uri, read_manifest
from thpad.storage.uri import Storage, join

log = logging.getLogger(__name__)


def test_sources(preprocessed: str, corpus: str, storage: Storage) -> list[str]:
    """The test split's source videos (below the corpus root), in key order; at least one is needed."""
    table = read_manifest(manifest_uri(preprocessed), storage).to_pylist()
    rows = sorted((r for r in table if r["split"] == "test"), key=lambda r: r["key"])
    if not rows:
        raise ValueError(f"{preprocessed}: the manifest has no test clip to make the demo from (the demo uses "
                         "held-out inputs only)")
    return [join(corpus, r["source"]) for r in rows]


def first_frame(video: str, at: int = 0) -> np.ndarray:
    """Frame ``at`` (or the last, if shorter) of a video as (H, W, 3) uint8 RGB."""
    with av.open(video) as container:
        frame = None
        for i, decoded in enumerate(container.decode(video=0)):
            frame = decoded.to_ndarray(format="rgb24")
            if i >= at:
                break
    if frame is None:
        raise ValueError(f"{video}: no video frame")
    return frame


def pick(sources: list[str], index: int) -> str:
    """The ``index``-th source, cycling when the test split is small."""
    return sources[index % len(sources)]


def build_demo(model: TalkingHeadModel, cfg: DemoConfig, sources: list[str], out: str | os.PathLike
               ) -> dict[str, Any]:
    """Write the demo folder (replaced whole: built beside it, then renamed); returns ``index.json``."""
    with atomic_dir(out) as tmp:
        index = _write_demo(model, cfg, sources, tmp)
        atomic_write_json(tmp / "index.json", index)
    return index


def _write_demo(model: TalkingHeadModel, cfg: DemoConfig, sources: list[str], tmp: Path) -> dict[str, Any]:
    photo_src, speech_src, key_src, drive_src = (pick(sources, i) for i in range(4))
    photo, keyframe = first_frame(photo_src), first_frame(key_src, at=cfg.keyframe_frame)
    Image.fromarray(photo).save(tmp / "photo.png")
    Image.fromarray(keyframe).save(tmp / "keyframe.png")
    speech = model.speech(speech_src, name=speech_src)
    soundfile.write(tmp / "speech.wav", speech, model.sample_rate, subtype="PCM_16")
    log.info("demo: photo from %s, speech from %s", photo_src, speech_src)
    sampled = model.generate(photo, speech, sample_rate=model.sample_rate, samples=cfg.samples, seed=cfg.seed)
    sampled.save(tmp / "samples.mp4")
    frame = min(cfg.keyframe_frame, sampled.num_frames - 1)
    model.generate(photo, speech, sample_rate=model.sample_rate, seed=cfg.seed,
                   keyframes={frame: keyframe}).save(tmp / "keyframe.mp4")
    model.generate(photo, speech, sample_rate=model.sample_rate, nonlip_from=drive_src).save(tmp / "reenacted.mp4")
    Image.fromarray(frame_strip(sampled.portrait.aligned, sampled.frames(), cfg.strip_frames)).save(
        tmp / "strip.png")
    return {"photo": photo_src, "speech": speech_src, "keyframe": {"source": key_src, "frame": frame},
            "reenacted_from": drive_src, "seeds": [s.seed for s in sampled.samples],
            "frames": sampled.num_frames, "files": sorted(p.name for p in tmp.iterdir()) + ["index.json"]}
