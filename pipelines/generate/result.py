"""What one generation call returns: the non-lip trajectories, the audio and the fps at once, the frames lazily.

``chunks()`` renders a 128-frame window at a time (the prior's window), so a caller that streams them (``save``, the
batch job, a server) never holds a whole video; ``frames()`` materialises them for callers that ask. ``save`` writes
each sample's mp4 (and a side-by-side grid of several samples) with the speech muxed in, and the JSON sidecar: every
setting, the seeds, the bundle's id and hashes, the inputs' sha256 and the per-frame trajectories.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from thpad.models.generation import Identity, render
from thpad.pipelines.generate.inputs import Portrait
from thpad.pipelines.generate.paste import PasteBack
from thpad.pipelines.generate.tensors import to_uint8
from thpad.pipelines.generate.trajectory import Trajectory
from thpad.pipelines.generate.writer import StreamingVideoWriter, grid, resize_frames
from thpad.storage.files import atomic_write_json

if TYPE_CHECKING:
    from thpad.pipelines.generate.model import TalkingHeadModel

log = logging.getLogger(__name__)
WINDOW = 128  # frames rendered at once: the prior's window
MAX_FRAMES_IN_MEMORY = 7500  # frames() warns past this (5 min at 25 fps)


@dataclass(frozen=True)
class Sample:
    """One video's seed (None: deterministic) and non-lip trajectory, sampled as far as rendering needs it."""

    seed: int | None
    trajectory: Trajectory

    @property
    def f_nl(self) -> np.ndarray:
        """The whole (L, N) float32 trajectory."""
        return self.trajectory.values


@dataclass
class GenerationResult:
    """The outcome of ``TalkingHeadModel.generate``; rendering happens in ``chunks``, ``frames`` or ``save``."""

    model: TalkingHeadModel
    identity: Identity
    portrait: Portrait
    f_l: np.ndarray  # (L, lip)
    audio: np.ndarray  # (N,) float32 at ``sample_rate``
    samples: list[Sample]
    settings: dict[str, Any]
    inputs: dict[str, Any]

    @property
    def fps(self) -> int:
        return self.model.fps

    @property
    def sample_rate(self) -> int:
        return self.model.sample_rate

    @property
    def num_frames(self) -> int:
        return len(self.f_l)

    @property
    def trajectory(self) -> np.ndarray:
        """The first sample's non-lip trajectory (L, N) (sampled in full on first access)."""
        return self.samples[0].f_nl

    def _render(self, start: int, end: int, size: int | None, paste: PasteBack | None,
                samples: list[Sample] | None = None) -> list[np.ndarray]:
        """Frames [start, end) of each of ``samples`` (default: all) as (t, H, W, 3) uint8, resized or pasted back."""
        out = []
        for sample in self.samples if samples is None else samples:
            f_nl = sample.trajectory.frames(start, end)  # (t, N): samples the prior's next window when needed
            frames = to_uint8(render(self.model.head, self.identity, f_nl, self.f_l[start:end]))
            if paste is not None:
                frames = _even(paste(frames))
            elif size is not None and size != frames.shape[1]:
                frames = resize_frames(frames, size)
            out.append(frames)
        return out

    def _paste(self, paste_back: bool) -> PasteBack | None:
        return PasteBack(self.portrait.image, self.portrait.xform, self.model.align_cfg.size) if paste_back else None

    def chunks(self, sample: int = 0, size: int | None = None, paste_back: bool = False) -> Iterator[np.ndarray]:
        """Sample ``sample``'s frames as (t, H, W, 3) uint8 windows of up to 128 frames, rendered on demand.

        ``size`` resizes the aligned face (resizing, not added detail); ``paste_back`` returns the whole photo with
        the generated face blended in (its size, not ``size``).
        """
        paste = self._paste(paste_back)
        for start in range(0, self.num_frames, WINDOW):
            yield self._render(start, min(start + WINDOW, self.num_frames), size, paste, [self.samples[sample]])[0]

    def frames(self, sample: int = 0, size: int | None = None, paste_back: bool = False) -> np.ndarray:
        """Every frame at once, (L, H, W, 3) uint8; warns past ``MAX_FRAMES_IN_MEMORY`` frames (use ``chunks``)."""
        if self.num_frames > MAX_FRAMES_IN_MEMORY:
            log.warning("materialising %d frames; chunks() or save() stream them instead", self.num_frames)
        return np.concatenate(list(self.chunks(sample, size, paste_back)))

    def sidecar(self) -> dict[str, Any]:
        """The JSON written beside the video: settings, seeds, bundle, inputs, trajectories."""
        bundle = self.model.bundle
        return {"settings": self.settings, "fps": self.fps, "num_frames": self.num_frames,
                "sample_rate": self.sample_rate, "audio_seconds": round(len(self.audio) / self.sample_rate, 4),
                "bundle": {"id": bundle.id, "files": {r: f["sha256"] for r, f in bundle.manifest["files"].items()}},
                "inputs": {**self.inputs, "face_box": list(self.portrait.box),
                           "other_faces": [list(b) for b in self.portrait.other_boxes]},
                "samples": [{"seed": s.seed, "f_nl": np.round(s.f_nl, 6).tolist()} for s in self.samples]}

    def output_paths(self, path: str | os.PathLike) -> dict[str, Path]:
        """Where ``save`` writes: ``OUT`` (one sample), or ``OUT`` as the grid and ``OUT-seedS.mp4`` per sample."""
        path = Path(path)
        if len(self.samples) == 1:
            return {"video": path}
        named = {f"seed{s.seed}": path.with_name(f"{path.stem}-seed{s.seed}{path.suffix}") for s in self.samples}
        return {"video": path, **named}

    def save(self, path: str | os.PathLike, size: int | None = None, paste_back: bool = False, crf: int = 18,
             progress: Callable[[int], None] | None = None, with_grid: bool = True) -> dict[str, Path]:
        """Stream every sample's mp4 (+ the grid of several samples, unless ``with_grid`` is false) and the sidecar
        ``OUT.json``; nothing is left at a final name when it fails. Returns the written paths by role (``video``,
        ``seedS``..., ``sidecar``; no ``video`` for several samples without the grid)."""
        paths = self.output_paths(path)
        several = len(self.samples) > 1
        targets = list(paths.values())[1:] if several else [paths["video"]]
        writers = [StreamingVideoWriter(p, self.fps, self.audio, self.sample_rate, crf) for p in targets]
        grid_writer = StreamingVideoWriter(paths["video"], self.fps, self.audio, self.sample_rate, crf) \
            if several and with_grid else None
        paste = self._paste(paste_back)
        renamed: list[Path] = []
        try:
            for start in range(0, self.num_frames, WINDOW):
                chunks = self._render(start, min(start + WINDOW, self.num_frames), size, paste)
                for writer, chunk in zip(writers, chunks, strict=True):
                    writer.write(chunk)
                if grid_writer is not None:
                    grid_writer.write(_even(grid(chunks)))
                if progress is not None:
                    progress(len(chunks[0]))
            for writer in [*writers, *([grid_writer] if grid_writer else [])]:
                renamed.append(writer.close())
        except BaseException:
            for writer in [*writers, *([grid_writer] if grid_writer else [])]:
                writer.abort()  # its temporary file; an older file at its final name is left alone
            for done in renamed:  # a partial set of outputs from this run is removed whole
                done.unlink(missing_ok=True)
            raise
        sidecar = Path(paths["video"]).with_suffix(".json")
        atomic_write_json(sidecar, self.sidecar())
        written = {role: p for role, p in paths.items() if role != "video" or grid_writer is not None or not several}
        return {**written, "sidecar": sidecar}


def _even(frames: np.ndarray) -> np.ndarray:
    """Crop one pixel row / column where H.264's yuv420p needs an even size."""
    height, width = frames.shape[1] // 2 * 2, frames.shape[2] // 2 * 2
    return frames[:, :height, :width]
