"""Benchmark of preprocessing (docs/paper-notes.md §2.1, §2.2), all in one run on the same machine:

- (a) PyAV decoding alone and (b) the naive per-frame detect-and-landmark loop, on the small corpus, one process;
- the profile of the pipeline's per-clip work in one process (``benchmarks.preprocess_parts``);
- the real pipeline (``run_preprocess`` on a local Ray) on the small corpus and on the large one. For each: the
  steady-state ms per frame and core (the workers' seconds inside shards over the frames), the fixed start-up
  cost (``ray.init`` plus everything else that is not per-frame work: the run's wall time on all cores less the
  steady-state work), the end-to-end frames/s, and the ratios to (a) and (b), per core;
- the machine's load during each phase.

The corpus is built (5 identities; the small corpus is the first clips of each identity) unless ``--corpus`` names
one with at least ``--large`` clips. Prints one JSON object.

Usage: .venv/bin/python -m benchmarks.preprocess [--small 40] [--large 200] [--workers 2] [--corpus PATH]
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
from collections.abc import Iterator
from pathlib import Path

from benchmarks.preprocess_parts import NAIVE_INCLUDES, decode_all, measure_naive, profile_clips
from thpad.pipelines.corpus.build import build_corpus
from thpad.pipelines.preprocess.config import PreprocessConfig
from thpad.pipelines.preprocess.run import run_preprocess
from thpad.pipelines.ray_env import RayConfig, ensure_ray
from thpad.stages.params import load_params
from thpad.storage.uri import Storage
from thpad.storage.voxceleb import SourceClip, discover

PIPELINE_INCLUDES = ("run_preprocess end to end: discover, plan, Ray Data actor start-up (imports, dlib load per "
                     "worker), decode, tracking, align, mel, JPEG + FLAC + npy, tar shards, progress records, "
                     "manifest and rejects parquet; ray.init is timed apart and counted in the fixed cost")


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


def subset(clips: tuple[SourceClip, ...], count: int, folder: Path, root: Path) -> Path:
    """A corpus folder of ``count`` clips taken round-robin over identities (symlinks to the files)."""
    by_identity: dict[str, list[SourceClip]] = {}
    for clip in sorted(clips, key=lambda c: c.key):
        by_identity.setdefault(clip.identity, []).append(clip)
    chosen, rank = [], 0
    while len(chosen) < min(count, len(clips)):
        chosen += [group[rank] for group in by_identity.values() if rank < len(group)][:count - len(chosen)]
        rank += 1
    for clip in chosen:
        for uri in (clip.video_uri, clip.audio_uri, clip.truth_uri):
            if uri:
                target = folder / Path(uri).relative_to(root)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(Path(uri).resolve())
    return folder


def pipeline_run(cfg: PreprocessConfig, name: str, phases: Phases, ray_init_s: float) -> dict:
    """One ``run_preprocess`` into a fresh folder, and its figures (see the module docstring)."""
    with phases(name):
        summary = run_preprocess(cfg, Storage(cfg.s3))
    wall, timing = phases.wall[name], summary["timing"]
    frames, steady_ms = timing["frames"], timing["ms_per_frame_per_worker"]
    fixed = ray_init_s + wall - frames * steady_ms / 1e3 / cfg.workers
    end_to_end = frames / (ray_init_s + wall)
    return {"clips": summary["accepted"], "frames": frames, "shards": summary["shards"],
            "steady_ms_per_frame_core": steady_ms, "fixed_startup_s": round(fixed, 2),
            "worker_start_s": timing["worker_start_seconds"], "ray_init_s": round(ray_init_s, 2),
            "wall_s": round(wall, 2), "end_to_end_frames_per_s": round(end_to_end, 1),
            "end_to_end_frames_per_s_per_core": round(end_to_end / cfg.workers, 1)}


def with_ratios(run: dict, naive_fps: float, decode_fps: float) -> dict:
    """Per-core rates of a pipeline run against (b) and (a), end to end and in steady state."""
    steady_fps = 1e3 / run["steady_ms_per_frame_core"]
    per_core = run["end_to_end_frames_per_s_per_core"]
    return {**run, "ratio_vs_naive": round(per_core / naive_fps, 2),
            "ratio_vs_naive_steady": round(steady_fps / naive_fps, 2),
            "ratio_vs_decode": round(per_core / decode_fps, 3),
            "ratio_vs_decode_steady": round(steady_fps / decode_fps, 3)}


def corpus_clips(args: argparse.Namespace, tmp: Path, phases: Phases) -> tuple[Path, tuple[SourceClip, ...]]:
    """The large corpus (built, or ``--corpus``) and its clips."""
    source = args.corpus
    if source is None:
        source = tmp / "corpus"
        corpus = load_params("params.yaml").corpus
        with phases("corpus_build"):
            build_corpus(dataclasses.replace(corpus, identities=5, clips=-(-args.large // 5), seconds=6.4,
                                             workers=args.workers), str(source), progress=False)
    clips = discover(str(source), Storage()).clips
    if len(clips) < args.large:
        raise SystemExit(f"{source} has {len(clips)} clips, fewer than --large {args.large}")
    return Path(source), clips


def run(args: argparse.Namespace, tmp: Path) -> dict:
    """Every measurement, in the order of the module docstring."""
    phases = Phases()
    root, clips = corpus_clips(args, tmp, phases)
    small = subset(clips, args.small, tmp / "small", root)
    large = subset(clips, args.large, tmp / "large", root) if len(clips) > args.large else root
    base = dataclasses.replace(load_params("params.yaml").preprocess, workers=args.workers)
    small_clips = discover(str(small), Storage()).clips
    with phases("decode_only"):
        frames = decode_all(small_clips)
    decode_fps = frames / phases.wall["decode_only"]
    with phases("naive"):
        naive_s, naive_frames, naive_parts = measure_naive(small_clips, base)
    naive_fps = naive_frames / naive_s
    with phases("profile"):
        profile = profile_clips(small_clips[:args.profile_clips], base)
    with phases("ray_init"):
        ensure_ray(RayConfig(address="", num_cpus=max(base.ray.num_cpus, args.workers)))
    ray_init_s = phases.wall["ray_init"]
    runs = {}
    for name, source in ((f"pipeline_{args.small}", small), (f"pipeline_{args.large}", large)):
        cfg = dataclasses.replace(base, source=str(source), out=str(tmp / name))
        runs[name] = with_ratios(pipeline_run(cfg, name, phases, ray_init_s), naive_fps, decode_fps)
    return {
        "cpu_count": os.cpu_count(), "workers": args.workers,
        "per_core_frames_per_s": {"decode_only": round(decode_fps, 1), "naive": round(naive_fps, 1)},
        "naive_ms_per_frame": round(1e3 / naive_fps, 2), "naive_parts_ms_per_frame": naive_parts,
        "pipeline": runs, "profile_in_process": profile,
        "phase_wall_s": {k: round(v, 2) for k, v in phases.wall.items()}, "machine_load": phases.load,
        "naive_includes": NAIVE_INCLUDES, "pipeline_includes": PIPELINE_INCLUDES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=40, help="clips of the small run (and of (a), (b))")
    parser.add_argument("--large", type=int, default=200, help="clips of the large run")
    parser.add_argument("--workers", type=int, default=2, help="Ray workers of the pipeline (one core each)")
    parser.add_argument("--profile-clips", type=int, default=8, help="clips of the in-process profile")
    parser.add_argument("--corpus", type=Path, default=None, help="reuse this corpus (>= --large clips)")
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
