"""A non-lip trajectory sampled window by window on demand: the first frames can be rendered and written while the
prior has sampled only its first window, and the whole (L, N) array is there the moment someone asks for it."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import numpy as np

from thpad.models.generation import scale_motion


class Trajectory:
    """The (L, N) non-lip codes of one video, pulled from an iterator of (t, N) chunks as far as they are needed."""

    def __init__(self, chunks: Iterable[np.ndarray], length: int) -> None:
        self.length = length
        self._chunks: Iterator[np.ndarray] = iter(chunks)
        self._values = np.zeros((0, 0), np.float32)
        self._lock = threading.Lock()  # one video may be read from several threads (a server, a progress bar)

    @classmethod
    def of(cls, values: np.ndarray) -> Trajectory:
        """A trajectory known at once (a driving video's codes, zeros)."""
        return cls([values.astype(np.float32)], len(values))

    def frames(self, start: int, end: int) -> np.ndarray:
        """Codes of frames [start, end), sampling windows until they cover ``end``: (end - start, N) float32."""
        with self._lock:
            while len(self._values) < min(end, self.length):
                chunk = next(self._chunks)  # (t, N)
                self._values = chunk if not len(self._values) else np.concatenate([self._values, chunk])
        return self._values[start:end]

    @property
    def values(self) -> np.ndarray:
        """All (L, N) codes (samples the windows not sampled yet)."""
        return self.frames(0, self.length)


def scaled_chunks(chunks: Iterable[np.ndarray], anchor: np.ndarray | None, scale: float) -> Iterator[np.ndarray]:
    """Motion scale about the anchor (the photo's own code), else about the first window's mean, chunk by chunk."""
    reference = anchor
    for chunk in chunks:
        if reference is None:
            reference = chunk.mean(axis=0)  # (N,)
        yield scale_motion(chunk, reference, scale)
