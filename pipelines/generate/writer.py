"""A streaming mp4 writer for generation, plus the frame helpers around it (side-by-side grid, resize).

Generation renders a talking head window by window (128 frames, 5.12 s at 25 fps; docs/paper-notes.md §1.7), so
the video is encoded chunk by chunk and never held whole in memory. The file is written under a temporary sibling
name and renamed on close, like ``thpad.pipelines.media.video.write_video``, so a killed run never leaves a
half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from thpad.pipelines.media.video import X264_OPTIONS, temp_path

AAC_FRAME_SIZE = 1024  # samples per AAC frame; the encoder takes exactly this many per frame (the last may be short)


class StreamingVideoWriter:
    """H.264 (yuv420p, libx264, X264_OPTIONS + crf) at ``fps`` with the speech muxed in as mono AAC, written chunk by
    chunk to a temporary sibling name and renamed to ``path`` by close(); abort() (or leaving a ``with`` block by an
    exception) deletes the temporary file and leaves nothing at ``path``.

    After each write() the audio samples covering the frames written so far (up to
    ``round(frames_written * sample_rate / fps)``) are encoded in whole 1024-sample AAC frames and muxed, so the file
    is interleaved and memory stays flat; close() encodes whatever audio remains, including audio that runs past the
    end of the video, and flushes both encoders.

    With ``threads == 1`` the output is byte-identical from run to run for the same frames and audio (x264
    single-threaded, macroblock-tree off, container metadata cleared). ``threads > 1`` lets x264 use that many
    threads: faster, but the bytes may then differ between runs.
    """

    def __init__(self, path: str | os.PathLike, fps: int, audio: np.ndarray | None, sample_rate: int = 16000,
                 crf: int = 18, threads: int = 1) -> None:
        """
        Args:
            path: the final ``.mp4`` path.
            fps: frames per second.
            audio: (N,) float mono samples in [-1, 1] (clipped), or None for a video-only file.
            sample_rate: the audio rate in Hz.
            crf: x264 constant rate factor (lower is better quality).
            threads: x264 threads; 1 gives byte-identical output.
        """
        if fps <= 0 or sample_rate <= 0 or threads < 1:
            raise ValueError(f"fps ({fps}) and sample_rate ({sample_rate}) must be positive, threads ({threads}) >= 1")
        if audio is not None and np.ndim(audio) != 1:
            raise ValueError(f"audio must be (N,) mono samples, got shape {np.shape(audio)}")
        self.path = Path(path)
        self.fps = fps
        self.sample_rate = sample_rate
        self.crf = crf
        self.threads = threads
        self._audio = None if audio is None else np.asarray(audio)  # (N,) kept by reference, cast per AAC frame
        self._tmp = temp_path(self.path)
        self._container: av.container.OutputContainer | None = None
        self._vstream: av.VideoStream | None = None
        self._astream: av.AudioStream | None = None
        self._size: tuple[int, int] | None = None  # (H, W), fixed by the first write()
        self._frames_written = 0
        self._audio_pos = 0  # samples already sent to the AAC encoder
        self._finished = False

    @property
    def frames_written(self) -> int:
        """The number of video frames encoded so far."""
        return self._frames_written

    def write(self, frames: np.ndarray) -> None:
        """Encode a chunk of frames, then the audio that covers them.

        Args:
            frames: (t, H, W, 3) uint8 RGB; H and W are even and fixed by the first call.
        """
        self._check_open()
        _check_frames(frames, self._size)
        if frames.shape[0] == 0:
            return
        if self._container is None:
            self._open(frames.shape[1], frames.shape[2])
        for frame in frames:  # (H, W, 3)
            vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vframe.pts = self._frames_written  # in the stream's 1/fps time base
            self._container.mux(self._vstream.encode(vframe))
            self._frames_written += 1
        if self._astream is not None:
            target = round(self._frames_written * self.sample_rate / self.fps)
            # Whole AAC frames only: the < 1024 left over waits for the next chunk so every frame but the last is full.
            self._encode_audio(min(target, len(self._audio)), whole_frames_only=True)

    def close(self) -> Path:
        """Flush the video, encode the rest of the audio, and rename the temporary file to ``path``.

        Returns:
            The final path.
        """
        self._check_open()
        if self._container is None:
            self._finished = True
            raise ValueError(f"{self.path}: no frames were written")
        try:
            self._container.mux(self._vstream.encode())
            if self._astream is not None:
                self._encode_audio(len(self._audio), whole_frames_only=False)
                self._container.mux(self._astream.encode(None))
            self._container.close()
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; nothing is left at ``path``. A no-op after close()."""
        if self._finished:
            return
        self._finished = True
        if self._container is not None:
            # Closing writes the trailer into a file about to be deleted; any error there (e.g. after a failed encode)
            # must not hide the exception that brought us here.
            with contextlib.suppress(Exception):
                self._container.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> StreamingVideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._finished:
            self.close()

    def _check_open(self) -> None:
        if self._finished:
            raise RuntimeError(f"{self.path}: the writer is already closed or aborted")

    def _open(self, height: int, width: int) -> None:
        """Open the temporary container and add both streams (the muxer needs every stream before the first packet)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        container = av.open(str(self._tmp), mode="w")
        self._container = container
        container.metadata.clear()
        options = X264_OPTIONS | {"crf": str(self.crf), "threads": str(self.threads)}
        vstream = container.add_stream("libx264", rate=self.fps, options=options)
        vstream.height, vstream.width = height, width
        vstream.pix_fmt = "yuv420p"
        vstream.codec_context.thread_count = self.threads
        if self.threads == 1:
            vstream.codec_context.thread_type = "NONE"
        self._vstream = vstream
        self._size = (height, width)
        if self._audio is not None:
            self._astream = container.add_stream("aac", rate=self.sample_rate, layout="mono")

    def _encode_audio(self, end: int, whole_frames_only: bool) -> None:
        """Encode and mux samples [audio_pos, end) in 1024-sample frames with pts = their first sample's index."""
        while end - self._audio_pos >= AAC_FRAME_SIZE or (not whole_frames_only and end > self._audio_pos):
            stop = min(self._audio_pos + AAC_FRAME_SIZE, end)
            block = np.clip(self._audio[self._audio_pos:stop], -1.0, 1.0).astype(np.float32)[None, :]  # (1, n)
            aframe = av.AudioFrame.from_ndarray(np.ascontiguousarray(block), format="fltp", layout="mono")
            aframe.sample_rate = self.sample_rate
            aframe.time_base = Fraction(1, self.sample_rate)
            aframe.pts = self._audio_pos
            self._container.mux(self._astream.encode(aframe))
            self._audio_pos = stop


def _check_frames(frames: np.ndarray, size: tuple[int, int] | None) -> None:
    """Raise ValueError unless ``frames`` is (t, H, W, 3) uint8 with even H, W (matching ``size`` when set)."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
        shape, dtype = np.shape(frames), getattr(frames, "dtype", type(frames))
        raise ValueError(f"frames must be (t, H, W, 3) uint8 RGB, got shape {shape} dtype {dtype}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frames are {width}x{height}: H.264 yuv420p needs an even width and height; "
                         "resize them first (e.g. resize_frames)")
    if size is not None and (height, width) != size:
        raise ValueError(f"frames are {width}x{height} but the first chunk was {size[1]}x{size[0]}")


def grid(chunks: Sequence[np.ndarray], columns: int | None = None) -> np.ndarray:
    """Tile K same-shaped frame chunks (t, H, W, 3) side by side (one row, or ``columns`` per row, padding the last
    row with black) into (t, rows*H, columns*W, 3) uint8, for the side-by-side video of K samples.

    Args:
        chunks: K arrays (t, H, W, 3) uint8 of the same shape, in reading order.
        columns: tiles per row; None puts all K in one row.
    Returns:
        (t, rows*H, columns*W, 3) uint8 with rows = ceil(K / columns).
    """
    if not chunks:
        raise ValueError("grid needs at least one chunk")
    shape = chunks[0].shape
    if any(c.shape != shape for c in chunks) or len(shape) != 4 or shape[3] != 3:
        raise ValueError(f"chunks must share one (t, H, W, 3) shape, got {[c.shape for c in chunks]}")
    columns = len(chunks) if columns is None else columns
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    rows = math.ceil(len(chunks) / columns)
    t, height, width, _ = shape
    out = np.zeros((t, rows * height, columns * width, 3), np.uint8)  # (t, rows*H, columns*W, 3), black padding
    for k, chunk in enumerate(chunks):
        r, c = divmod(k, columns)
        out[:, r * height:(r + 1) * height, c * width:(c + 1) * width] = chunk
    return out


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """(t, H, W, 3) uint8 -> (t, size, size, 3) with cv2 (INTER_CUBIC when enlarging, INTER_AREA when shrinking).

    Args:
        frames: (t, H, W, 3) uint8 RGB.
        size: the output height and width.
    Returns:
        (t, size, size, 3) uint8; shrinking means fewer output than input pixels.
    """
    if frames.ndim != 4 or frames.shape[3] != 3 or size < 1:
        raise ValueError(f"frames must be (t, H, W, 3) and size >= 1, got {frames.shape} and {size}")
    t, height, width, _ = frames.shape
    if (height, width) == (size, size):
        return frames.copy()
    interpolation = cv2.INTER_AREA if size * size < height * width else cv2.INTER_CUBIC
    out = np.empty((t, size, size, 3), frames.dtype)  # (t, size, size, 3)
    for i, frame in enumerate(frames):
        out[i] = cv2.resize(frame, (size, size), interpolation=interpolation)
    return out
