"""Benchmark of preprocessing (docs/paper-notes.md §2.1, §2.2): frames per second per core of (a) PyAV decoding
alone, (b) the naive per-frame recipe of public preprocessing scripts (dlib HOG detection + 68
landmarks on every frame), and (c) the real Ray Data pipeline (``run_preprocess``, tracked landmarks,
re-detection every ``redetect_every`` frames), all on the same clips in one run. Prints one JSON object.

Usage: .venv/bin/python -m benchmarks.preprocess [--clips N] [--workers 2] [--corpus PATH]
(run as a module: run as a script, this folder would shadow top-level packages)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from thpad.pipelines.corpus.build import build_corpus
from thpad.pipelines.media import align, audio, resample
from thpad.pipelines.media.config import samples_per_frame
from thpad.pipelines.media.faces import Face, FaceLandmarker
from thpad.pipelines.media.track import Box, track_face
from thpad.pipelines.media.video import DecodedVideo, read_video
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.preprocess.run import run_preprocess
from thpad.pipelines.ray_env import RayConfig, ensure_ray
from thpad.stages.params import load_params
from thpad.storage.manifest import manifest_uri, read_manifest
from thpad.storage.uri import Storage
from thpad.storage.voxceleb import SourceClip, discover

NAIVE_STAGES = ("decode", "detect_landmarks", "align_warp", "mel", "jpeg")
NAIVE_INCLUDES = ("per clip, in one process: read_video (video + audio), 25 fps index, dlib HOG detect "
                  "(upsample = track.detect_upsample) + 68 landmarks on EVERY frame (largest face; a miss "
                  "repeats the previous landmarks), align_transforms + warp_frames to 224 px, resample + "
                  "fit + mel, JPEG encode of every crop; no FLAC/npy/tar writing")
PIPELINE_INCLUDES = ("run_preprocess end to end: discover, plan, Ray Data actor start-up (dlib load per "
                     "worker), decode, tracking, align, mel, JPEG + FLAC + npy, tar shards, progress "
                     "records, manifest and rejects parquet; excludes ray.init")


class Timer:
    """Seconds accumulated per named stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


class TimedLandmarker:
    """A ``Landmarker`` proxy that times and counts the pipeline tracker's detect and landmarks calls."""

    def __init__(self, inner: FaceLandmarker, timer: Timer) -> None:
        self.inner, self.timer = inner, timer
        self.calls: dict[str, int] = defaultdict(int)

    def detect(self, rgb: np.ndarray, upsample: int = 0) -> list[Face]:
        self.calls["detect"] += 1
        with self.timer("track_detect_calls"):
            return self.inner.detect(rgb, upsample)

    def landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray:
        self.calls["landmarks"] += 1
        with self.timer("track_landmarks_calls"):
            return self.inner.landmarks(rgb, box)


class Phases:
    """Per phase: wall seconds, this process's CPU seconds per wall second, and the busy fraction of the
    whole machine (/proc/stat), which shows how much of the cores other jobs took meanwhile."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.load: dict[str, dict[str, float]] = {}

    @staticmethod
    def _machine() -> tuple[int, int]:
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        return sum(ticks) - ticks[3] - ticks[4], sum(ticks)  # (busy, total); idle and iowait excluded

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        print(f"{name}...", file=sys.stderr, flush=True)
        loadavg, (busy0, total0) = os.getloadavg()[0], self._machine()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        yield
        (busy1, total1), self.wall[name] = self._machine(), time.perf_counter() - wall0
        self.load[name] = {"own_cpu_per_wall": round((time.process_time() - cpu0) / self.wall[name], 2),
                           "machine_busy": round((busy1 - busy0) / max(total1 - total0, 1), 2),
                           "loadavg_1m_at_start": round(loadavg, 2)}


def decode_all(clips: tuple[SourceClip, ...]) -> int:
    """(a) Decode every clip with ``read_video`` (video and audio); returns the frame count."""
    return sum(len(read_video(clip.video_uri).frames) for clip in clips)


def _pcm(decoded: DecodedVideo, clip: SourceClip, cfg: PreprocessConfig, num_frames: int) -> np.ndarray:
    """The clip's 16 kHz audio fitted to its frames, as ``clip.process_local`` gets it."""
    if clip.audio_uri:
        pcm = audio.load_pcm(clip.audio_uri, cfg.audio, cfg.policy.sample_rate_range)
    else:
        pcm = audio.resample_pcm(decoded.audio, decoded.sample_rate, cfg.audio, cfg.policy.sample_rate_range)
    return resample.fit_audio_to_video(pcm, num_frames, samples_per_frame(cfg.audio),
                                       cfg.policy.length_tolerance_frames)


def _detect_every_frame(frames: np.ndarray, landmarker: FaceLandmarker, upsample: int) -> np.ndarray:
    """Landmarks (T, 68, 2) from a detection on every frame; a miss repeats the last landmarks."""
    out = np.zeros((len(frames), 68, 2), np.float32)  # (T, 68, 2)
    for t, frame in enumerate(frames):
        faces = landmarker.detect(frame, upsample)
        out[t] = faces[0].landmarks if faces else out[max(t - 1, 0)]
    return out


def naive_clip(clip: SourceClip, cfg: PreprocessConfig, landmarker: FaceLandmarker, timer: Timer,
               tracker: TimedLandmarker) -> int:
    """(b) One clip the naive way, each stage timed; then, untimed for (b), the pipeline's tracker
    on the same frames (stage ``track``), for the breakdown. Returns the clip's frame count."""
    with timer("decode"):
        decoded = read_video(clip.video_uri)
        frames = decoded.frames[resample.frame_indices(len(decoded.frames), decoded.fps, cfg.audio.fps)]
    with timer("detect_landmarks"):
        lmk = _detect_every_frame(frames, landmarker, cfg.track.detect_upsample)  # (T, 68, 2)
    with timer("align_warp"):
        xforms = align.align_transforms(lmk, cfg.align)  # (T, 2, 3)
        crops = align.warp_frames(frames, xforms, cfg.align.size, cfg.align.border)  # (T, S, S, 3)
    with timer("mel"):
        audio.mel_spectrogram(_pcm(decoded, clip, cfg, len(frames)), cfg.audio, len(frames))  # (80, 4T)
    with timer("jpeg"):
        quality = [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality]
        for crop in crops:
            cv2.imencode(".jpg", np.ascontiguousarray(crop[:, :, ::-1]), quality)
    with timer("track"):
        track_face(frames, tracker, cfg.track)
    return len(frames)


def measure_naive(clips: tuple[SourceClip, ...], cfg: PreprocessConfig) -> tuple[Timer, TimedLandmarker, int]:
    """(b) plus the tracker breakdown; the dlib models load before any timing."""
    landmarker, timer = FaceLandmarker(), Timer()
    tracker = TimedLandmarker(landmarker, timer)
    frames = sum(naive_clip(clip, cfg, landmarker, timer, tracker) for clip in clips)
    return timer, tracker, frames


def measure_pipeline(cfg: PreprocessConfig, storage: Storage, phases: Phases) -> dict:
    """(c) ``run_preprocess`` on a local Ray; ``ray.init`` is timed apart, before the run. A second run
    on the same output resumes every shard: its time is the fixed cost (Ray Data, actors, manifest)."""
    with phases("ray_init"):
        ensure_ray(RayConfig(address="", num_cpus=max(cfg.ray.num_cpus, cfg.workers)))
    with phases("pipeline"):
        summary = run_preprocess(cfg, storage)
    with phases("pipeline_resumed"):
        run_preprocess(cfg, storage)
    frames = sum(read_manifest(manifest_uri(cfg.out), storage).column("num_frames").to_pylist())
    return {"frames": frames, **{k: summary[k] for k in ("accepted", "rejected", "shards")}}


def breakdown(timer: Timer, tracker: TimedLandmarker, frames: int) -> dict:
    """Milliseconds per frame of each stage, and per call of the tracker's detect and landmarks."""
    per_frame = {name: round(1e3 * timer.seconds[name] / frames, 3) for name in (*NAIVE_STAGES, "track")}
    per_frame["pipeline_in_process_total"] = round(sum(per_frame[k] for k in ("decode", "track", "align_warp",
                                                                              "mel", "jpeg")), 3)
    calls = {k: tracker.calls[k] for k in ("detect", "landmarks")}
    per_call = {f"{k}_ms_per_call": round(1e3 * timer.seconds[f"track_{k}_calls"] / max(n, 1), 3)
                for k, n in calls.items()}
    return {"ms_per_frame": per_frame, "tracker_calls": calls, **per_call}


def report(args: argparse.Namespace, clips: int, frames: int, phases: Phases, pipe: dict, parts: dict) -> dict:
    """The JSON object: per-core frames/s of (a), (b), (c), their ratios, wall times and the breakdown."""
    walls = phases.wall
    fps = {"decode_only": frames / walls["decode_only"], "naive": frames / walls["naive"],
           "pipeline": pipe["frames"] / walls["pipeline"] / args.workers}
    return {
        "clips": clips, "frames": frames, "workers": args.workers, "cpu_count": os.cpu_count(),
        "frames_per_s_per_core": {k: round(v, 1) for k, v in fps.items()},
        "ratio_vs_naive": round(fps["pipeline"] / fps["naive"], 2),
        "ratio_vs_decode": round(fps["pipeline"] / fps["decode_only"], 3),
        "wall_s": {k: round(v, 2) for k, v in walls.items()},
        "pipeline_summary": pipe, "cpu_load": phases.load,
        "naive_includes": NAIVE_INCLUDES, "pipeline_includes": PIPELINE_INCLUDES,
        "breakdown_ms_per_frame": parts,
    }


def run(args: argparse.Namespace, tmp: Path) -> dict:
    """Build or reuse the corpus, then measure (a), (b) and (c) in that order."""
    phases, source = Phases(), args.corpus
    if source is None:
        source = str(tmp / "corpus")
        corpus = load_params("params.yaml").corpus
        with phases("corpus_build"):  # 5 identities x args.clips clips of 6.4 s
            build_corpus(dataclasses.replace(corpus, identities=5, clips=args.clips, seconds=6.4, workers=2),
                         source, progress=False)
    cfg = dataclasses.replace(load_params("params.yaml").preprocess, source=source, out=str(tmp / "out"),
                              workers=args.workers)
    storage = Storage(cfg.s3)
    clips = discover(cfg.source, storage).clips
    with phases("decode_only"):
        frames = decode_all(clips)
    with phases("naive_and_breakdown"):
        timer, tracker, naive_frames = measure_naive(clips, cfg)
    phases.wall["naive"] = sum(timer.seconds[name] for name in NAIVE_STAGES)  # without the tracker's pass
    pipe = measure_pipeline(cfg, storage, phases)
    if not frames == naive_frames == pipe["frames"]:
        print(f"note: {frames} decoded, {naive_frames} at 25 fps, {pipe['frames']} in shards", file=sys.stderr)
    return report(args, len(clips), frames, phases, pipe, breakdown(timer, tracker, naive_frames))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="clips per identity of the built corpus")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers of the pipeline")
    parser.add_argument("--corpus", default=None, help="reuse this corpus instead of building one")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tb-"))  # short: Ray's unix sockets live below it
    os.environ["THPAD_RAY_TMP"] = str(tmp)
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Ray and library prints must not mix with the JSON
            result = run(args, tmp)
    finally:
        if "ray" in sys.modules:
            sys.modules["ray"].shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
