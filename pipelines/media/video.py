"""Video and audio container I/O with PyAV: H.264 + AAC writing, frame and audio decoding.

Writers always write to a temporary name beside the target and rename when complete, so a killed
run never leaves a half-written file under the final name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

_X86_64 = platform.machine().lower() in ("x86_64", "amd64")
# x264's kernels are pinned to x86-64-v2 (its SSE2-only and SSSE3+ kernels were seen to give different streams,
# so its AVX2/AVX-512 ones are not trusted either); same stream as auto-detection on AVX2 CPUs, ~13 % slower.
X264_ASM = ":asm=MMX2,SSE,SSE2,SSE3,SSSE3,SSE4.1,SSE4.2,Cache64" if _X86_64 else ""
X264_OPTIONS = {"preset": "medium", "threads": "1", "x264-params": "mbtree=0" + X264_ASM}
# x86-64-v2 in libavutil's AV_CPU_FLAG_* bits: MMX, MMXEXT, SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2, CMOV.
AV_CPU_FLAGS_X86_64_V2 = 0x0001 | 0x0002 | 0x0008 | 0x0010 | 0x0040 | 0x0080 | 0x0100 | 0x0200 | 0x1000


def _libavutil() -> ctypes.CDLL | None:
    """PyAV's own libavutil (bundled in ``av.libs``), else the system's; None where neither is found."""
    bundled = sorted(glob.glob(os.path.join(os.path.dirname(av.__file__), os.pardir, "av.libs", "libavutil*.so*")))
    name = bundled[0] if bundled else ctypes.util.find_library("avutil")
    return ctypes.CDLL(name) if name else None


def force_av_cpu_flags(flags: int) -> bool:
    """Force FFmpeg's CPU flags for codec contexts opened from now on in this process (-1: detect them again).

    FFmpeg picks SSE, AVX, AVX2 or FMA3 kernels by CPU, and they round differently: the AAC stream of the same
    samples differs between CPUs with and without AVX/FMA3. ``AV_CPU_FLAGS_X86_64_V2`` gives the same bytes on every
    x86-64 CPU that runs numpy 2 (no measurable cost for the AAC encoder; x264 is pinned by ``X264_ASM``).
    Returns False where it cannot (not x86-64, or libavutil not found).
    """
    lib = _libavutil() if _X86_64 else None
    if lib is None:
        return False
    lib.av_force_cpu_flags(ctypes.c_int(flags))
    return flags == -1 or lib.av_get_cpu_flags() == flags


def temp_path(path: Path) -> Path:
    """A temporary sibling name for ``path`` that keeps its suffix (PyAV picks the format by it)."""
    return path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")


def write_video(
    path: str | Path,
    frames: Iterable[np.ndarray],
    fps: int,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 18,
) -> Path:
    """Encode RGB frames (H, W, 3) uint8 as H.264 (yuv420p) with an optional mono AAC track.

    Args:
        path: the final ``.mp4`` path; written to a temporary name, then renamed.
        frames: (H, W, 3) uint8 RGB frames.
        fps: frames per second.
        audio: (N,) float32 mono samples in [-1, 1], or None for no audio track.
        sample_rate: the audio rate in Hz.
        crf: x264 constant rate factor (lower is better quality).
    Returns:
        The final path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        _encode(tmp, frames, fps, audio, sample_rate, crf)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _encode(path: Path, frames: Iterable[np.ndarray], fps: int, audio: np.ndarray | None,
            sample_rate: int, crf: int) -> None:
    with av.open(str(path), mode="w") as container:
        container.metadata.clear()
        vstream = None
        astream = container.add_stream("aac", rate=sample_rate, layout="mono") if audio is not None else None
        for frame in frames:
            if vstream is None:
                # Byte-identical output from run to run: x264's macroblock-tree rate control was seen
                # to give a different stream on every encode of the same frames, so it is off.
                vstream = container.add_stream("libx264", rate=fps, options=X264_OPTIONS | {"crf": str(crf)})
                vstream.height, vstream.width = frame.shape[:2]
                vstream.pix_fmt = "yuv420p"
                vstream.codec_context.thread_type = "NONE"
                vstream.codec_context.thread_count = 1
            container.mux(vstream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        if vstream is None:
            raise ValueError(f"{path}: no frames to write")
        container.mux(vstream.encode())
        if astream is not None:
            _encode_audio(container, astream, audio, sample_rate)


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream,
                  audio: np.ndarray, sample_rate: int) -> None:
    samples = np.clip(audio, -1.0, 1.0).astype(np.float32)[None, :]  # (1, N)
    frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = Fraction(1, sample_rate)
    container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


@dataclass(frozen=True)
class DecodedVideo:
    """Frames (T, H, W, 3) uint8 RGB with their rate, and the audio (N,) float32 mono with its rate."""

    frames: np.ndarray
    fps: float
    audio: np.ndarray | None
    sample_rate: int | None


def read_video(path: str | Path) -> DecodedVideo:
    """Decode every frame and the first audio track (mixed to mono) of a container."""
    with av.open(str(path)) as container:
        vstream = container.streams.video[0]
        fps = float(vstream.average_rate or vstream.guessed_rate or 0)
        # One reformatter for the clip: ``frame.to_ndarray(format=...)`` sets up a new swscale context per
        # frame, which cost ~1 ms of a 224 px frame's ~1.5 ms decode; the pixels are the same.
        rgb = VideoReformatter()
        decoded = (rgb.reformat(f, format="rgb24").to_ndarray() for f in container.decode(vstream))
        frames = np.stack(list(decoded))  # (T, H, W, 3)
    audio, rate = read_audio(path)
    return DecodedVideo(frames=frames, fps=fps, audio=audio, sample_rate=rate)


def read_audio(path: str | Path) -> tuple[np.ndarray | None, int | None]:
    """The first audio track as (N,) float32 mono and its rate, or (None, None) when there is none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None, None
        astream = container.streams.audio[0]
        chunks = [f.to_ndarray().astype(np.float32) for f in container.decode(astream)]  # (C, n) or (1, n*C)
        rate = astream.rate
        channels = astream.codec_context.channels or 1
    if not chunks:
        return np.zeros(0, np.float32), rate
    planar = [c if c.shape[0] == channels else c.reshape(-1, channels).T for c in chunks]
    return np.concatenate(planar, axis=1).mean(axis=0), rate  # (N,)
