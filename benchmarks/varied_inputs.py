"""Re-encodes sample-corpus clips at other resolutions, frame rates, codecs and audio rates into a dev-only
VoxCeleb2-layout folder: the "varied real inputs" on which preprocessing changes are checked against the shards
of the code before them (``python -m benchmarks.compare_shards``).

Each variant puts the 224 px clip, scaled, on a larger canvas whose background is the blurred frame, so the face
covers a realistic share of a wide frame. Prints the written files as JSON.

Usage: .venv/bin/python -m benchmarks.varied_inputs SRC_CORPUS OUT [--clips 2]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from thpad.pipelines.media.video import read_video


@dataclass(frozen=True)
class Variant:
    """One way to re-encode a clip: canvas (width, height), the face clip's scaled side, rate and codecs."""

    name: str
    canvas: tuple[int, int]
    face_side: int
    fps: int
    codec: str
    audio_rate: int


VARIANTS = (
    Variant("w640_24fps_mpeg4", (640, 360), 300, 24, "mpeg4", 44100),
    Variant("w1280_30fps_h264", (1280, 720), 560, 30, "libx264", 48000),
    Variant("w1920_25fps_hevc", (1920, 1080), 900, 25, "libx265", 48000),
    Variant("s448_50fps_vp9", (448, 448), 448, 50, "libvpx-vp9", 16000),
    Variant("w480_25fps_smallface", (480, 270), 170, 25, "libx264", 22050),
)


def compose(frame: np.ndarray, variant: Variant, offset: tuple[int, int]) -> np.ndarray:
    """The (H, W, 3) canvas: the blurred, stretched frame as background, the scaled frame pasted at ``offset``."""
    width, height = variant.canvas
    background = cv2.GaussianBlur(cv2.resize(frame, (width, height)), (0, 0), 12)  # (H, W, 3)
    face = cv2.resize(frame, (variant.face_side, variant.face_side), interpolation=cv2.INTER_CUBIC)
    x, y = offset
    background[y:y + variant.face_side, x:x + variant.face_side] = face
    return background


def resample_frames(count: int, source_fps: float, fps: int) -> np.ndarray:
    """Indices of the source frames shown at each output frame of ``fps`` (nearest earlier frame)."""
    seconds = count / source_fps
    return np.minimum((np.arange(int(seconds * fps)) * source_fps / fps).astype(int), count - 1)


def resample_audio(pcm: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling (good enough for a test input)."""
    out_len = int(len(pcm) * target / rate)
    return np.interp(np.arange(out_len) * rate / target, np.arange(len(pcm)), pcm).astype(np.float32)


def encode(path: Path, frames: np.ndarray, variant: Variant, pcm: np.ndarray) -> None:
    """Write (T, H, W, 3) frames and mono audio into ``path`` with the variant's codecs."""
    with av.open(str(path), mode="w") as container:
        quiet = {"x265-params": "log-level=error"} if variant.codec == "libx265" else {}
        video = container.add_stream(variant.codec, rate=variant.fps, options=quiet)
        video.width, video.height, video.pix_fmt = variant.canvas[0], variant.canvas[1], "yuv420p"
        audio = container.add_stream("aac", rate=variant.audio_rate, layout="mono")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(video.encode())
        chunk = av.AudioFrame.from_ndarray(pcm[None], format="fltp", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = variant.audio_rate, 0, Fraction(1, variant.audio_rate)
        container.mux(audio.encode(chunk))
        container.mux(audio.encode(None))


def write_variants(source: Path, out: Path, clips: int) -> list[str]:
    """Every variant of the first ``clips`` dev clips of ``source``; returns the written paths."""
    written = []
    sources = sorted((source / "dev" / "mp4").glob("*/*/*.mp4"))[:clips]
    rng = np.random.default_rng(0)
    for i, clip in enumerate(sources):
        decoded = read_video(clip)
        for variant in VARIANTS:
            index = resample_frames(len(decoded.frames), decoded.fps, variant.fps)
            width, height = variant.canvas
            offset = (int(rng.integers(0, width - variant.face_side + 1)),
                      int(rng.integers(0, height - variant.face_side + 1)))
            frames = np.stack([compose(decoded.frames[t], variant, offset) for t in index])  # (T', H, W, 3)
            pcm = resample_audio(decoded.audio, decoded.sample_rate, variant.audio_rate)
            path = out / "dev" / "mp4" / f"id9{i:04d}" / variant.name / "00001.mp4"
            path.parent.mkdir(parents=True, exist_ok=True)
            encode(path, frames, variant, pcm)
            written.append(str(path))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a VoxCeleb2-layout corpus with dev/ clips (the sample corpus)")
    parser.add_argument("out", type=Path, help="the folder to write (dev/mp4/id9NNNN/VARIANT/00001.mp4)")
    parser.add_argument("--clips", type=int, default=2, help="source clips, each written in every variant")
    args = parser.parse_args()
    print(json.dumps(write_variants(args.source, args.out, args.clips), indent=1))


if __name__ == "__main__":
    main()
